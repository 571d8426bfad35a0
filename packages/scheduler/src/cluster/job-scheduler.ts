import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { DispyError, dispy, type Frame } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import { SchedulingEngine, type EngineOptions } from '../engine/scheduling-engine.js';
import { NodeFinder } from '../discovery/node-finder.js';
import { NodeLink } from './node-link.js';
import type { AvailInfo, ComputationSpec, LocalFile, NodeAllocator, NodeInfo, SchedulerJob } from './types.js';

/** The attachment of a job whose arguments are gone (never expected: they last until its reply). */
const EMPTY_ARGUMENTS = new Uint8Array(0);

export interface JobSchedulerOptions {
  secret: string;
  /** Local address for discovery and node connections (undefined: any). */
  ipAddr?: string;
  /** UDP port of discovery (0: any). */
  port: number;
  /** The port was not chosen by the user: any free port will do if it is taken. */
  portIsDefault: boolean;
  nodePort: number;
  pingInterval?: number;
  clientName: string;
  logger: Logger;
  engine?: EngineOptions;
  /** Where files sent by jobs (dispySendFile) are saved, at their relative paths. */
  fileDir: string;
}

/**
 * The scheduler that JobCluster embeds and dispyscheduler hosts: it finds nodes (discovery),
 * asks each computation's allocators which to use, keeps one authenticated connection per node,
 * sets computations up there, and runs the engine's choices: jobs go out as frames, replies come
 * back as events of their computation.
 */
export class JobScheduler {
  private readonly engine: SchedulingEngine<SchedulerJob>;
  private readonly finder: NodeFinder;
  private readonly computations = new Map<string, ComputationSpec>();
  private readonly links = new Map<string, NodeLink>();
  private readonly connecting = new Map<string, Promise<NodeLink | undefined>>();
  private readonly jobs = new Map<number, SchedulerJob>();
  private readonly settingUp = new Set<string>();
  private nextUid = 1;
  private started?: Promise<void>;
  private closed = false;

  constructor(private readonly options: JobSchedulerOptions) {
    this.engine = new SchedulingEngine<SchedulerJob>({ dispatch: (key, job) => this.dispatch(key, job) }, options.engine);
    this.finder = new NodeFinder({
      secret: options.secret,
      bindHost: options.ipAddr,
      bindPort: options.port,
      portIsDefault: options.portIsDefault,
      nodePort: options.nodePort,
      clientName: options.clientName,
      logger: options.logger,
      pingInterval: options.pingInterval,
      onReply: (reply, address) => void this.onDiscovered(reply, address),
    });
  }

  /** Starts looking for nodes for `spec`; rejects when discovery cannot start. */
  async addComputation<Ref>(spec: ComputationSpec<Ref>): Promise<void> {
    this.computations.set(spec.computeId, spec as ComputationSpec);
    for (const allocator of spec.allocators) await this.lookFor(allocator);
    this.started ??= this.finder.start();
    await this.started;
    this.finder.pingNow();
  }

  /** Queues a job; it is dispatched to a node in the next pass. */
  submit<Ref>(job: Omit<SchedulerJob<Ref>, 'uid'>): SchedulerJob<Ref> {
    const queued = { ...job, uid: this.nextUid++ } as SchedulerJob<Ref>;
    this.jobs.set(queued.uid, queued);
    this.engine.submit(queued);
    return queued;
  }

  /** Pins a waiting job to another host (undefined: any node), e.g. once its name is resolved. */
  repin(job: SchedulerJob, host: string | undefined): void {
    if (!this.engine.dequeue(job.uid)) return;
    job.pinnedHost = host;
    this.engine.submit(job);
  }

  /**
   * Cancels a job: `'dequeued'` when it was waiting (it is forgotten), `'sent'` when it is on a
   * node (its reply will say cancelled), `'unknown'` when it is done or not ours.
   */
  cancel(job: SchedulerJob): 'dequeued' | 'sent' | 'unknown' {
    if (!this.jobs.has(job.uid)) return 'unknown';
    if (this.engine.dequeue(job.uid)) {
      this.jobs.delete(job.uid);
      return 'dequeued';
    }
    const link = job.nodeKey ? this.links.get(job.nodeKey) : undefined;
    if (!link) return 'unknown';
    link.connection.send({ cancel: { computeId: job.computeId, jobId: job.uid } });
    return 'sent';
  }

  /** Forgets a waiting job without telling anyone (for a cluster giving up on it). */
  drop(job: SchedulerJob): void {
    this.engine.dequeue(job.uid);
    this.jobs.delete(job.uid);
  }

  /** Nodes serving a computation now. */
  nodesOf(computeId: string): NodeInfo[] {
    return [...this.links.values()].filter((link) => link.computeIds.has(computeId)).map((link) => {
      link.countTraffic();
      return link.info;
    });
  }

  /** Jobs running on (sent to) a node now. */
  runningOn(nodeKey: string): SchedulerJob[] {
    return this.engine.runningOn(nodeKey);
  }

  /** Adds a way of choosing nodes to a computation; nodes already known are asked again. */
  async allocate(computeId: string, allocator: NodeAllocator): Promise<void> {
    const spec = this.computations.get(computeId);
    if (!spec) return;
    spec.allocators.push(allocator);
    spec.excluded?.clear();
    await this.lookFor(allocator);
    this.finder.pingNow();
  }

  /** Points discovery at an allocator's nodes: broadcast for a pattern, else its addresses. */
  private async lookFor(allocator: NodeAllocator): Promise<void> {
    if (allocator.isWildcard) {
      this.finder.enableBroadcast(allocator.port);
    } else if (net.isIP(allocator.host)) {
      this.finder.addHost(allocator.host, allocator.port);
    } else {
      for (const { address } of await lookup(allocator.host, { all: true })) {
        allocator.resolved.add(address);
        this.finder.addHost(address, allocator.port);
      }
    }
  }

  /** Stops sending a computation's jobs to a node; its running jobs finish. */
  deallocate(computeId: string, nodeKey: string): boolean {
    const link = this.links.get(nodeKey);
    const spec = this.computations.get(computeId);
    if (!link || !spec || !link.computeIds.has(computeId)) return false;
    (spec.excluded ??= new Set()).add(nodeKey);
    this.engine.removeComputation(nodeKey, computeId);
    return true;
  }

  /**
   * Closes a computation on one node: no new jobs go there; its running jobs are terminated
   * (`terminatePending`) or finish first. The node is then released for this computation.
   */
  async closeNode(computeId: string, nodeKey: string, terminatePending: boolean): Promise<boolean> {
    if (!this.deallocate(computeId, nodeKey)) return false;
    const link = this.links.get(nodeKey)!;
    if (!terminatePending) {
      while (this.engine.runningOn(nodeKey).some((job) => job.computeId === computeId) && this.links.get(nodeKey) === link) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    if (this.links.get(nodeKey) !== link) return true;
    await this.release(link, computeId, terminatePending, 'the node was closed for this computation');
    return true;
  }

  /** Closes a computation on a node; a node left with none is hung up on. */
  private async release(link: NodeLink, computeId: string, terminatePending: boolean, why: string): Promise<void> {
    // Idle connections are unref'd; keep this one alive until the node has answered.
    link.connection.setActive(true);
    await link.connection.closeComputation(computeId, terminatePending);
    link.computeIds.delete(computeId);
    this.computations.get(computeId)?.events.nodeDown(link.info, [], why);
    if (link.computeIds.size === 0) {
      this.links.delete(link.key);
      this.engine.removeNode(link.key);
      link.connection.destroy();
    }
  }

  /**
   * Uses `cpus` CPUs of a node for a computation (at most what the node offers); resolves with
   * the CPUs now used, or -1 when the node does not serve the computation.
   */
  async setNodeCpus(computeId: string, nodeKey: string, cpus: number): Promise<number> {
    const link = this.links.get(nodeKey);
    if (!link || !link.computeIds.has(computeId)) return -1;
    const answer = await link.connection.setCpus(computeId, cpus);
    if (answer.error) {
      this.options.logger.warn(`node ${link.key}: ${answer.error}`);
      return -1;
    }
    link.info.cpus = answer.cpus;
    this.engine.setNodeCpus(nodeKey, Math.min(answer.cpus, link.nodeCpus));
    return answer.cpus;
  }

  /** Keeps the process alive (work is pending) or lets it exit when idle. */
  setActive(active: boolean): void {
    this.finder.setActive(active);
    for (const link of this.links.values()) link.connection.setActive(active);
  }

  /** Closes a computation on its nodes (killing its running jobs) and forgets it. */
  async closeComputation(computeId: string): Promise<void> {
    const closing = [...this.links.values()].filter((link) => link.computeIds.has(computeId));
    await Promise.all(closing.map((link) => this.release(link, computeId, true, 'the computation was closed')));
    this.computations.delete(computeId);
  }

  /** Stops discovery and hangs up on every node. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.computations.keys()].map((id) => this.closeComputation(id)));
    this.finder.close();
    for (const link of this.links.values()) link.connection.destroy();
    this.links.clear();
  }

  private async onDiscovered(reply: dispy.DiscoveryReply, address: string): Promise<void> {
    if (this.closed) return;
    const key = `${reply.tcpHost}:${reply.tcpPort}`;
    const existing = this.links.get(key);
    if (!existing && (reply.busy || reply.cpus === 0)) {
      this.options.logger.debug(`node ${reply.name} (${key}) is busy; will ask again`);
      return;
    }
    const wanted: Array<[ComputationSpec, number, NodeAllocator]> = [];
    for (const spec of this.computations.values()) {
      if (existing?.computeIds.has(spec.computeId) || spec.excluded?.has(key)) continue;
      const [cpus, allocator] = this.cpusWanted(spec, reply);
      if (cpus > 0) wanted.push([spec, cpus, allocator!]);
    }
    if (wanted.length === 0) return;
    const link = existing ?? (await this.connect(reply, key));
    if (!link) return;
    this.finder.found(address, true, reply.tcpPort);
    for (const [spec, cpus, allocator] of wanted) await this.setUp(link, spec, cpus, allocator);
  }

  private connect(reply: dispy.DiscoveryReply, key: string): Promise<NodeLink | undefined> {
    let pending = this.connecting.get(key);
    if (pending) return pending;
    const link = new NodeLink({
      host: reply.tcpHost,
      port: reply.tcpPort,
      name: reply.name,
      totalCpus: reply.totalCpus || reply.cpus,
      platform: reply.platform,
      localAddress: this.options.ipAddr,
      secret: this.options.secret,
      clientName: this.options.clientName,
      onFrame: (from, frame, attachment) => this.onFrame(from, frame, attachment),
      onClose: (from, error) => this.onNodeClosed(from, error),
    });
    link.info.availInfo = toAvailInfo(reply.availInfo);
    pending = link.connection
      .open()
      .then(() => {
        if (this.closed) {
          link.connection.destroy();
          return undefined;
        }
        this.links.set(key, link);
        link.connection.setActive(this.jobs.size > 0);
        return link;
      })
      .catch((error: Error) => {
        const level = DispyError.isInstance(error) ? 'error' : 'warn';
        this.options.logger[level](`node ${reply.name} (${key}): ${error.message}`);
        link.connection.destroy();
        return undefined;
      })
      .finally(() => this.connecting.delete(key));
    this.connecting.set(key, pending);
    return pending;
  }

  private async setUp(link: NodeLink, spec: ComputationSpec, cpus: number, allocator: NodeAllocator): Promise<void> {
    if (this.settingUp.has(`${link.key}/${spec.computeId}`)) return;
    this.settingUp.add(`${link.key}/${spec.computeId}`);
    try {
      const extras = (await spec.nodeExtras?.(allocator)) ?? { files: [] };
      const files = [...spec.files, ...extras.files];
      const answer = await link.connection.setup(
        {
          computeId: spec.computeId,
          name: spec.name,
          kind: spec.kind,
          source: spec.source,
          cpus,
          destPath: spec.destPath,
          cleanup: spec.cleanup,
          pulseInterval: spec.pulseInterval,
          definitions: spec.definitions,
          values: spec.values,
          files: files.map(({ name, size, sha256, mode }) => ({ name, size, sha256, mode })),
          setup: spec.setup,
          setupArgs: extras.setupArgs,
          cleanupFunction: spec.cleanupFunction,
        },
        (want) => link.sendWanted(spec.computeId, files, want),
      );
      if (!answer.ok) throw new Error(`setup of ${spec.name} failed: ${answer.error}`);
      if (!this.computations.has(spec.computeId) || this.closed) return;
      link.computeIds.add(spec.computeId);
      link.info.cpus = answer.cpus;
      link.startHeartbeat(answer.heartbeatInterval);
      if (spec.pulseInterval > 0) this.watchPulses(link, spec.pulseInterval);
      this.options.logger.info(`node ${link.info.name} (${link.key}) serves ${answer.cpus} CPUs to ${spec.name}`);
      spec.events.nodeUp(link.info);
      this.engine.addNode(link.key, link.info.host, answer.cpus, spec.computeId);
    } catch (error) {
      // Whatever failed (its files, its setup there), the cluster hears of it and goes on without
      // the node, which is not asked again (it would fail the same way).
      spec.events.nodeFailed(link.info, (error as Error).message);
      (spec.excluded ??= new Set()).add(link.key);
      if (link.computeIds.size === 0) {
        this.links.delete(link.key);
        link.connection.destroy();
      }
    } finally {
      this.settingUp.delete(`${link.key}/${spec.computeId}`);
    }
  }

  /** Copies a file to a node, into the computation's directory (cluster.sendFile). */
  async sendFile(computeId: string, nodeKey: string, file: LocalFile): Promise<boolean> {
    const link = this.links.get(nodeKey);
    if (!link || !link.computeIds.has(computeId)) return false;
    await link.sendFiles(computeId, [file]);
    return true;
  }

  /** Presumes a node dead when it has been silent for five pulse intervals. */
  private watchPulses(link: NodeLink, seconds: number): void {
    const timer = setInterval(() => {
      if (this.links.get(link.key) !== link) {
        clearInterval(timer);
        return;
      }
      if (Date.now() - link.info.lastHeard > 5 * seconds * 1000) {
        clearInterval(timer);
        link.connection.destroy(new Error(`no pulse for ${5 * seconds} s`));
      }
    }, seconds * 1000);
    timer.unref();
  }

  private cpusWanted(spec: ComputationSpec, reply: dispy.DiscoveryReply): [number, NodeAllocator?] {
    const availInfo = toAvailInfo(reply.availInfo);
    for (const allocator of spec.allocators) {
      if (allocator.port !== undefined && allocator.port !== reply.tcpPort) continue;
      try {
        const cpus = allocator.allocate(spec.owner, reply.tcpHost, reply.name, reply.cpus, availInfo, reply.platform);
        if (cpus > 0) return [Math.min(Math.floor(cpus), reply.cpus), allocator];
      } catch (error) {
        this.options.logger.error(`allocate() of nodes "${allocator.host}" threw: ${(error as Error).message}`);
      }
    }
    return [0];
  }

  private dispatch(key: string, job: SchedulerJob): void {
    const link = this.links.get(key)!;
    const spec = this.computations.get(job.computeId);
    job.nodeKey = key;
    const frame = {
      job: {
        computeId: job.computeId,
        jobId: job.uid,
        timeout: job.timeout ?? 0,
        files: job.files?.map((file) => file.name),
        definitions: job.definitions,
      },
    };
    if (job.files?.length) {
      // Per-job files go first, on the same connection; the node runs the job once they are in.
      link.sendFiles(job.computeId, job.files, job.uid).catch((error: Error) =>
        this.options.logger.warn(`per-job files of job ${job.uid} to ${link.key}: ${error.message}`),
      );
    }
    // The arguments follow the frame as they are: they were encoded at submit, and are kept
    // (unchanged) until the job's final reply.
    link.connection.send(frame, job.args ?? EMPTY_ARGUMENTS);
    spec?.events.jobStarted(job, link.info);
  }

  private onFrame(link: NodeLink, frame: Frame, attachment?: Buffer[]): void {
    if (frame.kind === 'jobReply') {
      const reply = frame.jobReply as dispy.JobReply;
      const uid = Number(reply.jobId);
      link.connection.ack(uid);
      const job = this.jobs.get(uid);
      if (!job || job.nodeKey !== link.key) return;
      if (reply.status === dispy.JobStatus.PROVISIONAL) {
        this.computations.get(job.computeId)?.events.jobProvisional(job, reply, link.info);
        return;
      }
      this.jobs.delete(uid);
      // Arguments are kept while the job is out, to resend it if its node stops or dies.
      job.args = undefined;
      this.engine.jobDone(link.key, uid, reply.endTime - reply.startTime);
      this.computations.get(job.computeId)?.events.jobReply(job, reply, link.info);
    } else if (frame.kind === 'error') {
      const { jobId, code } = frame.error!;
      const message = frame.error!.message ?? '';
      const job = jobId ? this.jobs.get(Number(jobId)) : undefined;
      if (!job || job.nodeKey !== link.key) {
        this.options.logger.warn(`node ${link.info.name} (${link.key}): ${message}`);
        return;
      }
      this.engine.jobDone(link.key, job.uid);
      if (code === 'DISPY_ERR_NODE_STOPPED') {
        // The node stopped taking jobs after this one was sent: it runs elsewhere (or later).
        this.options.logger.debug(`node ${link.key} takes no new jobs; job ${job.uid} goes back to the queue`);
        job.nodeKey = undefined;
        this.engine.submit(job);
        this.computations.get(job.computeId)?.events.jobRequeued(job);
        return;
      }
      this.options.logger.warn(`node ${link.info.name} (${link.key}): ${message}`);
      this.jobs.delete(job.uid);
      this.computations.get(job.computeId)?.events.jobRefused(job, link.info, message);
    } else if (frame.kind === 'fileChunk') {
      link.files(this.options.fileDir).receive(frame.fileChunk as dispy.FileChunk, attachment);
    } else if (frame.kind === 'pulse') {
      const pulse = frame.pulse as dispy.Pulse;
      link.info.availInfo = toAvailInfo(pulse.availInfo);
      for (const computeId of link.computeIds) this.computations.get(computeId)?.events.nodeAvailInfo(link.info);
    } else if (frame.kind === 'nodeCpus') {
      link.nodeCpus = frame.nodeCpus!.cpus ?? 0;
      this.engine.setNodeCpus(link.key, Math.min(link.info.cpus, link.nodeCpus));
      this.options.logger.info(`node ${link.info.name} (${link.key}) now offers ${link.nodeCpus} CPUs`);
    }
  }

  private onNodeClosed(link: NodeLink, error?: Error): void {
    link.stopHeartbeat();
    if (this.links.get(link.key) !== link) return;
    this.links.delete(link.key);
    const why = `node ${link.info.name} (${link.key}) went away${error ? `: ${error.message}` : ''}`;
    if (!this.closed) this.options.logger.warn(why);
    const lostBy = new Map<string, SchedulerJob[]>();
    for (const job of this.engine.removeNode(link.key)) {
      const spec = this.computations.get(job.computeId);
      job.nodeKey = undefined;
      if (spec?.reentrant && job.pinnedHost === undefined) {
        this.engine.submit(job);
        spec.events.jobRequeued(job);
      } else {
        this.jobs.delete(job.uid);
        lostBy.set(job.computeId, [...(lostBy.get(job.computeId) ?? []), job]);
      }
    }
    for (const computeId of link.computeIds) {
      this.computations.get(computeId)?.events.nodeDown(link.info, lostBy.get(computeId) ?? [], why);
    }
    if (!this.closed) {
      this.finder.found(link.info.host, false, link.info.port);
      this.finder.pingNow();
    }
  }
}

function toAvailInfo(info: dispy.IAvailInfo | null | undefined): AvailInfo | undefined {
  if (!info) return undefined;
  return { cpu: info.cpu ?? 0, memory: info.memory ?? 0, disk: info.disk ?? 0, swap: info.swap ?? 0 };
}
