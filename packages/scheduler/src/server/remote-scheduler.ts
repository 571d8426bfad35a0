import type net from 'node:net';
import { DispyError, ErrorCode, UNEXPECTED, dispatchFrame, dispy, type ClientTls, type Frame, type FrameTable } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import { NodeLink } from '../cluster/node-link.js';
import { reattachComputations } from '../cluster/link-recovery.js';
import { Reconnection } from '../cluster/reconnection.js';
import { describeFiles } from '../cluster/local-files.js';
import type { ClusterScheduler } from '../cluster/cluster-scheduler.js';
import type { ComputationSpec, JobRequest, LocalFile, NodeAllocator, NodeInfo, SchedulerJob } from '../cluster/types.js';
import { endStatus, nodeFromDescription } from './wire-node.js';
import { jobFilesConfig, type JobFilesOptions } from '../cluster/job-files.js';
import type { JobFilesConfig } from '../cluster/node-link.js';

export interface RemoteSchedulerOptions {
  /** Where dispyscheduler serves SharedJobClusters. */
  host: string;
  port: number;
  /** The cluster secret. */
  secret: string;
  tls?: ClientTls;
  localAddress?: string;
  clientName: string;
  logger: Logger;
  /** @internal Makes the socket (tests); default `net.connect`. */
  connect?: () => net.Socket;
  /** Where files sent by jobs (dispySendFile, relayed by dispyscheduler) land, and their limits; default: the working directory. */
  jobFiles?: Omit<JobFilesOptions, 'logger'>;
}

/** Attempts at setting the computation up when the connection is lost before the SetupReply. */
const SETUP_ATTEMPTS = 3;
/** Milliseconds before the next attempt, times the attempt's number. */
const SETUP_RETRY_MS = 500;

/** How long closing waits for a lost connection to come back before it leaves the computation to the scheduler. */
const CLOSE_WAIT_MS = 5000;

/** A job of this client as the remote scheduler tracks it. */
interface RemoteJob<Ref> extends SchedulerJob<Ref> {
  nodeKey?: string;
  /** Held until the computation is set up at the scheduler (then sent and cleared). */
  request?: JobRequest<Ref>;
  /** Its per-job files are going to the scheduler; the Job frame follows. */
  sending?: boolean;
  /** Sent to the scheduler: kept until the job ends, to send it again if the scheduler never got it (link lost). */
  sent?: JobRequest<Ref>;
  /** Cancelled while the link was down: the cancel goes out once the computation is taken back. */
  cancelled?: boolean;
}

type Handlers = FrameTable<[], 'ignored' | typeof UNEXPECTED>;

/**
 * The scheduler of a SharedJobCluster: the methods of `JobScheduler` that `JobCluster` uses, done
 * by dispyscheduler over one authenticated connection (the client's side is a node's link:
 * `NodeLink`, `NodeConnection`). Its frames come back as the same `ComputationEvents`, so the
 * cluster's ledger, jobs and callbacks are JobCluster's own. One computation per instance.
 *
 * When the connection is lost, it reconnects with backoff for as long as dispyscheduler keeps
 * the computation (its grace period, told in AuthResult) and takes the computation back
 * (Reattach, as from a node: `reattachComputations`): the scheduler resends the replies not
 * acknowledged, and jobs it never got are sent again. If it does not come back in time, or lost
 * the computation (it restarted), the jobs not done end Cancelled, and the next submit connects
 * again and sets the computation up anew; a scheduler that cannot be reached fails those jobs,
 * naming it.
 */
export class RemoteScheduler<
  Ref = unknown,
  Owner = unknown,
  Alloc extends NodeAllocator<Owner> = NodeAllocator<Owner>,
> implements ClusterScheduler<Ref, Owner, Alloc> {
  private spec?: ComputationSpec<Ref, Owner, Alloc>;
  private link?: NodeLink;
  /** The connection being opened and set up. */
  private opening?: NodeLink;
  private connecting?: Promise<void>;
  private readonly jobs = new Map<number, RemoteJob<Ref>>();
  /** Nodes serving the computation now, by key. */
  private readonly nodes = new Map<string, NodeInfo>();
  private readonly handlers: Handlers;
  private nextUid = 1;
  /** Numbers the NodeAllocates sent to the scheduler (their files go to `nodes/<n>/`). */
  private nextAllocation = 1;
  private readonly jobFiles: JobFilesConfig;
  private active = false;
  /** Reconnecting the lost link (its state is `down` meanwhile). */
  private reconnection?: Reconnection;
  private closed = false;

  constructor(private readonly options: RemoteSchedulerOptions) {
    this.handlers = {
      jobReply: (reply) => this.jobReply(reply),
      jobEvent: (event) => this.jobEvent(event),
      nodeStatus: (status) => this.nodeStatus(status),
      pulse: () => undefined,
      error: (error) => {
        // The scheduler is stopping (it closed our computation): its connection's end is not a loss to recover from.
        if (error.code === ErrorCode.NODE_STOPPED && this.link) this.link.stopping = true;
        this.options.logger.warn(`dispyscheduler ${this.where}: ${error.message}`);
      },
      setupReply: 'ignored',
      closeReply: 'ignored',
      fileWant: 'ignored',
      fileDone: 'ignored',
      setCpusReply: 'ignored',
      reattachReply: 'ignored',
      allocateReply: 'ignored',
      deallocateReply: 'ignored',
      allocate: UNEXPECTED,
      deallocate: UNEXPECTED,
      nodeCpus: UNEXPECTED,
      // Taken by onFrame (files sent by jobs, relayed), which knows the link.
      fileChunk: 'ignored',
      hello: UNEXPECTED,
      auth: UNEXPECTED,
      authResult: UNEXPECTED,
      setup: UNEXPECTED,
      job: UNEXPECTED,
      jobAck: UNEXPECTED,
      cancel: UNEXPECTED,
      close: UNEXPECTED,
      setCpus: UNEXPECTED,
      fileKept: UNEXPECTED,
      reattach: UNEXPECTED,
      reclaim: UNEXPECTED,
      reclaimReply: UNEXPECTED,
    };
    this.jobFiles = jobFilesConfig({ fileDir: process.cwd(), ...options.jobFiles, logger: options.logger }, (_link, chunk) => {
      const job = this.jobs.get(Number(chunk.jobId));
      return job !== undefined && job.computeId === chunk.computeId && job.nodeKey === chunk.nodeKey;
    });
  }

  private get where(): string {
    return `${this.options.host}:${this.options.port}`;
  }

  /** Connects to dispyscheduler and sets the computation up there; rejects with why not (AuthError for a wrong secret). */
  async addComputation(spec: ComputationSpec<Ref, Owner, Alloc>): Promise<void> {
    if (this.spec) throw new DispyError(ErrorCode.START, 'a SharedJobCluster has one computation');
    this.spec = spec;
    await this.ready();
  }

  submit(request: JobRequest<Ref>): SchedulerJob<Ref> {
    const job: RemoteJob<Ref> = {
      uid: this.nextUid++,
      computeId: request.computeId,
      priority: request.priority,
      ref: request.ref,
      request,
    };
    this.jobs.set(job.uid, job);
    if (this.link?.state === 'down') return job; // sent once the computation is taken back
    if (this.link && !this.connecting) this.sendJob(job);
    else if (this.spec && !this.closed) this.ready().catch(() => undefined);
    return job;
  }

  cancel(job: SchedulerJob<Ref>): 'dequeued' | 'sent' | 'unknown' {
    const ours = this.jobs.get(job.uid);
    if (!ours) return 'unknown';
    if (ours.request || ours.sending) {
      this.jobs.delete(job.uid);
      return 'dequeued';
    }
    ours.cancelled = true;
    if (this.link?.state === 'up') this.link.connection.send({ cancel: { computeId: ours.computeId, jobId: ours.uid } });
    return 'sent';
  }

  drop(job: SchedulerJob<Ref>): boolean {
    const ours = this.jobs.get(job.uid);
    if (!ours) return false;
    this.jobs.delete(job.uid);
    if (!ours.request) this.link?.connection.send({ cancel: { computeId: ours.computeId, jobId: ours.uid } });
    return true;
  }

  nodesOf(_computeId: string): NodeInfo[] {
    return [...this.nodes.values()];
  }

  runningOn(nodeKey: string): SchedulerJob<Ref>[] {
    return [...this.jobs.values()].filter((job) => job.nodeKey === nodeKey);
  }

  // ---- Node operations, done by dispyscheduler on this computation (as JobScheduler does them on its own) ----

  /** Adds a way of choosing nodes (allocateNode): the scheduler asks its nodes again. */
  async allocate(computeId: string, allocator: Alloc): Promise<void> {
    const link = await this.linkNow();
    this.spec?.allocators.push(allocator);
    await this.sendAllocations(link, computeId, [allocator]);
  }

  /** Stops sending the computation's jobs to a node; its running jobs finish. False when the node does not serve it. */
  async deallocate(computeId: string, nodeKey: string): Promise<boolean> {
    const link = this.link;
    if (!link || !this.nodes.has(nodeKey)) return false;
    const reply = await link.connection.request('deallocate', { deallocate: { computeId, nodeKey } }, 'deallocateReply');
    return reply.ok === true;
  }

  /** Closes the computation on one node (its running jobs terminated, or finishing first). False when the node does not serve it. */
  async closeNode(computeId: string, nodeKey: string, terminatePending: boolean): Promise<boolean> {
    const link = this.link;
    if (!link || !this.nodes.has(nodeKey)) return false;
    const reply = await link.connection.request(
      `closeNode(${nodeKey})`,
      { close: { computeId, terminatePending, nodeKey } },
      'closeReply',
      // Without terminatePending, the node closes once its running jobs are done, however long they take.
      { timeoutMs: terminatePending ? undefined : 0x7fff_ffff },
    );
    return !reply.notServed;
  }

  /**
   * Asks the scheduler to use `cpus` CPUs of a node for the computation. It does so with
   * --cooperative (or for an exclusive computation), as in dispy; otherwise it changes nothing and
   * answers the CPUs used there. Resolves those CPUs, or -1 when the node does not serve the
   * computation, refuses, or does not answer (logged).
   */
  async setNodeCpus(computeId: string, nodeKey: string, cpus: number): Promise<number> {
    const link = this.link;
    const node = this.nodes.get(nodeKey);
    if (!link || !node) return -1;
    let reply: dispy.SetCpusReply;
    try {
      reply = (await link.connection.request(
        'setNodeCpus',
        { setCpus: { computeId, cpus, nodeKey } },
        'setCpusReply',
      )) as dispy.SetCpusReply;
    } catch (error) {
      this.options.logger.warn((error as Error).message);
      return -1;
    }
    if (reply.error) {
      this.options.logger.warn(`dispyscheduler ${this.where}: ${reply.error}`);
      return -1;
    }
    if (reply.unchanged)
      this.options.logger.info(`setNodeCpus(${nodeKey}): dispyscheduler is not --cooperative; the CPUs of shared nodes stay as they are`);
    node.cpus = reply.cpus;
    return reply.cpus;
  }

  /** Copies a file to a node (through the scheduler) into the computation's directory; false when the node does not serve it. */
  async sendFile(computeId: string, nodeKey: string, file: LocalFile): Promise<boolean> {
    const link = this.link;
    if (!link || !this.nodes.has(nodeKey)) return false;
    try {
      await (
        await link.streamFile(computeId, file, 0, nodeKey)
      ).arrived;
    } catch (error) {
      if (DispyError.isInstance(error) && error.code === ErrorCode.NO_COMPUTATION) return false;
      throw error;
    }
    return true;
  }

  /** The connection, once the computation is set up (connecting if it is not). */
  private async linkNow(): Promise<NodeLink> {
    if (!this.link || this.connecting) await this.ready();
    if (!this.link) throw new DispyError(ErrorCode.NO_ANSWER, `not connected to dispyscheduler ${this.where}`);
    return this.link;
  }

  /**
   * Sends NodeAllocates to the scheduler (Allocate) with their per-node depends files and setup
   * arguments, which it gives to the nodes each chooses. Before the Setup (when some carry
   * such extras or CPUs), they replace the Setup's `nodes`. A NodeAllocate's own `allocate`
   * method cannot run at the scheduler: its host, port, cpus, depends and setupArgs are what count.
   */
  private async sendAllocations(link: NodeLink, computeId: string, allocators: Alloc[]): Promise<void> {
    const spec = this.spec!;
    const files: LocalFile[] = [];
    const nodes: dispy.INodeAllocation[] = [];
    for (const allocator of allocators) {
      const extras = (await spec.nodeExtras?.(allocator)) ?? { files: [] };
      const at = this.nextAllocation++;
      const named = extras.files.map((file) => ({ ...file, name: `nodes/${at}/${file.name}` }));
      files.push(...named);
      nodes.push({
        host: allocator.host,
        port: allocator.port ?? 0,
        cpus: allocator.cpus ?? 0,
        files: named.map(({ name, size, mode }) => ({ name, size, mode })),
        setupArgs: extras.setupArgs,
      });
    }
    const reply = await link.connection.request('allocateNode', { allocate: { computeId, nodes } }, 'allocateReply', {
      timeoutMs: 10 * 60_000,
      sendFiles: (want) => link.sendWanted(computeId, files, want),
    });
    if (!reply.ok) throw new DispyError(ErrorCode.START, `dispyscheduler ${this.where} refused the nodes: ${reply.error}`);
  }

  /** Whether a computation's allocators carry anything that `Setup.nodes` (host names) cannot say. */
  private async hasExtras(spec: ComputationSpec<Ref, Owner, Alloc>): Promise<boolean> {
    for (const allocator of spec.allocators) {
      if ((allocator.cpus ?? 0) !== 0) return true;
      const extras = await spec.nodeExtras?.(allocator);
      if (extras && (extras.files.length > 0 || extras.setupArgs !== undefined)) return true;
    }
    return false;
  }

  setActive(active: boolean): void {
    this.active = active;
    this.link?.connection.setActive(active);
    this.reconnection?.setActive(active);
  }

  async closeComputation(computeId: string): Promise<void> {
    await this.connecting?.catch(() => undefined);
    // A lost link being reconnected: the computation is closed once it is back (or known gone).
    // A scheduler still away after CLOSE_WAIT_MS is left to close it itself, at the end of its
    // grace period for this client: close() does not wait that long.
    const reconnection = this.reconnection;
    if (reconnection) {
      reconnection.setActive(true);
      let timer: NodeJS.Timeout | undefined;
      const waited = await Promise.race([
        reconnection.ended,
        new Promise<'away'>((resolve) => (timer = setTimeout(() => resolve('away'), CLOSE_WAIT_MS))),
      ]);
      clearTimeout(timer);
      if (waited === 'away') {
        reconnection.stop();
        this.options.logger.warn(
          `dispyscheduler ${this.where} is still unreachable; it closes the computation itself when its grace period for this client ends`,
        );
        return;
      }
    }
    const link = this.link;
    if (!link || link.state !== 'up') return;
    link.connection.setActive(true);
    await link.connection.closeComputation(computeId, true).catch((error: Error) => this.options.logger.debug(error.message));
  }

  /** Closes the computation at the scheduler (its running jobs are terminated) and hangs up. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.spec) await this.closeComputation(this.spec.computeId);
    this.reconnection?.stop();
    this.link?.close();
    this.link = undefined;
  }

  /** Connects and sets the computation up unless that is done or in progress; then sends the jobs held meanwhile. */
  private ready(): Promise<void> {
    this.connecting ??= this.connect()
      .then((link) => {
        this.link = link;
        link.connection.setActive(this.active);
        for (const job of this.jobs.values()) if (job.request) this.sendJob(job);
      })
      .catch((error: Error) => {
        const why = `could not use dispyscheduler: ${error.message}`;
        // Jobs waiting for the connection end with the reason; the next submit tries again.
        for (const job of [...this.jobs.values()]) {
          if (!job.request) continue;
          this.jobs.delete(job.uid);
          this.spec?.events.jobFailed(job, 'cancelled', why);
        }
        throw DispyError.isInstance(error) ? new DispyError(error.code, why, { cause: error }) : new Error(why, { cause: error });
      })
      .finally(() => {
        this.connecting = undefined;
      });
    return this.connecting;
  }

  /**
   * Connects and sets the computation up. A connection lost after it authenticated and before
   * the SetupReply (the scheduler may have set the computation up: a Setup again replaces it) is
   * tried again, SETUP_ATTEMPTS times in all; a refusal, or a scheduler that cannot be reached,
   * fails at once.
   */
  private async connect(): Promise<NodeLink> {
    for (let attempt = 1; ; attempt++) {
      const lost = { afterOpen: false };
      try {
        return await this.connectOnce(lost);
      } catch (error) {
        const refused = DispyError.isInstance(error) && (error.code === ErrorCode.START || error.code === ErrorCode.CLOSED);
        if (!lost.afterOpen || refused || this.closed || attempt >= SETUP_ATTEMPTS) throw error;
        this.options.logger.debug(
          `dispyscheduler ${this.where}: the connection was lost while setting up (${(error as Error).message}); trying again`,
        );
        await new Promise((resolve) => setTimeout(resolve, SETUP_RETRY_MS * attempt));
      }
    }
  }

  /** One attempt of `connect`; `lost.afterOpen` says whether its connection had authenticated and then went. */
  private async connectOnce(lost: { afterOpen: boolean }): Promise<NodeLink> {
    const spec = this.spec!;
    const { host, port, secret, tls, clientName, localAddress, connect } = this.options;
    const link: NodeLink = new NodeLink({
      host,
      port,
      name: 'dispyscheduler',
      totalCpus: 0,
      platform: '',
      localAddress,
      secret,
      tls,
      clientName,
      onFrame: (_link, frame, attachment) => this.onFrame(link, frame, attachment),
      onClose: (_link, error) => this.lost(link, error),
      connect,
      peerKind: 'dispyscheduler',
    });
    this.opening = link;
    let opened = false;
    try {
      await link.connection.open();
      opened = true;
      if (await this.hasExtras(spec)) await this.sendAllocations(link, spec.computeId, spec.allocators);
      const answer = await link.connection.setup(
        {
          computeId: spec.computeId,
          name: spec.name,
          kind: spec.kind,
          source: spec.source,
          destPath: spec.destPath,
          cleanup: spec.cleanup,
          definitions: spec.definitions,
          values: spec.values,
          files: spec.files.map(({ name, size, mode }) => ({ name, size, mode })),
          setup: spec.setup,
          cleanupFunction: spec.cleanupFunction,
          nodes: spec.allocators.map((allocator) => allocator.host),
          reentrant: spec.reentrant,
          maxRetries: spec.maxRetries,
          exclusive: spec.exclusive ?? false,
        },
        (want) => link.sendWanted(spec.computeId, spec.files, want),
      );
      if (!answer.ok) throw new DispyError(ErrorCode.START, `dispyscheduler ${this.where} refused the computation: ${answer.error}`);
    } catch (error) {
      lost.afterOpen = opened && link.connection.isClosed;
      link.close();
      throw error;
    } finally {
      this.opening = undefined;
    }
    if (this.closed) {
      link.close();
      throw new DispyError(ErrorCode.CLOSED, 'the cluster was closed');
    }
    this.options.logger.info(`computation ${spec.name} set up at dispyscheduler ${this.where}`);
    link.computeIds.add(spec.computeId);
    return link;
  }

  private sendJob(job: RemoteJob<Ref>): void {
    const request = job.request!;
    job.request = undefined;
    if (request.files?.length) {
      job.sending = true;
      void this.sendWithFiles(job, request);
      return;
    }
    this.sendJobFrame(job, request);
  }

  /**
   * Per-job files go to the scheduler first (each in place there, FileDone), then the Job frame
   * naming them; a file that cannot be read or sent ends the job `terminated`, naming it. A job
   * cancelled meanwhile is not sent.
   */
  private async sendWithFiles(job: RemoteJob<Ref>, request: JobRequest<Ref>): Promise<void> {
    const link = this.link!;
    let files: LocalFile[] = [];
    let current = request.files![0];
    try {
      files = await describeFiles(request.files!);
      for (const file of files) {
        current = file.path;
        if (this.jobs.get(job.uid) !== job || link !== this.link) return;
        await (
          await link.streamFile(request.computeId, file, job.uid)
        ).arrived;
      }
    } catch (error) {
      if (this.jobs.get(job.uid) !== job || link !== this.link) return;
      this.jobs.delete(job.uid);
      this.spec!.events.jobFailed(job, 'terminated', `its depends file ${current} could not be sent: ${(error as Error).message}`);
      return;
    } finally {
      job.sending = undefined;
    }
    if (this.jobs.get(job.uid) !== job || link !== this.link) return;
    this.sendJobFrame(job, request, files);
  }

  private sendJobFrame(job: RemoteJob<Ref>, request: JobRequest<Ref>, files: LocalFile[] = []): void {
    job.sent = request;
    const pin = request.pin;
    this.link!.connection.send(
      {
        job: {
          computeId: request.computeId,
          jobId: job.uid,
          timeout: request.timeout ?? 0,
          definitions: request.definitions,
          files: files.map((file) => file.name),
          priority: request.priority,
          pinKey: pin && 'key' in pin ? pin.key : '',
          pinHost: pin && 'host' in pin ? pin.host : '',
        },
      },
      [request.args],
    );
  }

  private onFrame(link: NodeLink, frame: Frame, attachment?: Buffer[]): void {
    // Frames of the connection being set up count too: one may follow its SetupReply in the same read.
    if (link !== this.link && link !== this.opening) return;
    // A file a job sent, relayed by the scheduler: it lands as from a node (confined, limited, then renamed).
    if (frame.kind === 'fileChunk') return link.files(this.jobFiles).receive(frame.fileChunk as dispy.FileChunk, attachment);
    const mark = dispatchFrame(this.handlers, frame, attachment);
    if (mark === UNEXPECTED) this.options.logger.warn(`dispyscheduler ${this.where} sent an unexpected ${frame.kind} frame; ignored`);
  }

  /**
   * The connection to the scheduler is gone: reconnects and takes the computation back while the
   * scheduler keeps it (its grace period); a scheduler that keeps nothing closed the computation,
   * so its jobs are over.
   */
  private lost(link: NodeLink, error?: Error): void {
    if (link !== this.link || this.closed || link.state === 'down') return;
    const graceSeconds = link.zombieSeconds;
    if (graceSeconds <= 0 || link.stopping) {
      this.gone(link, `lost the connection to dispyscheduler ${this.where}${error ? `: ${error.message}` : ''}; it closed the computation`);
      return;
    }
    const lostAt = Date.now();
    link.state = 'down';
    const { logger } = this.options;
    logger.warn(
      `lost the connection to dispyscheduler ${this.where}${error ? `: ${error.message}` : ''}; ` +
        `its jobs keep running there; reconnecting for up to ${graceSeconds} s`,
    );
    const reconnection: Reconnection = new Reconnection({
      deadline: lostAt + graceSeconds * 1000,
      attempt: async () => {
        await link.reconnect();
        link.connection.setActive(this.active);
        try {
          await this.takeBack(link);
        } catch (failure) {
          link.connection.destroy();
          throw failure;
        }
        if (this.link !== link) return; // the scheduler had lost the computation: handled
        link.state = 'up';
        logger.info(`dispyscheduler ${this.where} is back after ${((Date.now() - lostAt) / 1000).toFixed(1)} s; the jobs go on`);
        for (const job of this.jobs.values()) if (job.request) this.sendJob(job);
      },
      failed: (failure, attempt) => logger.debug(`dispyscheduler ${this.where}: reconnect attempt ${attempt} failed: ${failure.message}`),
      abandon: () => link.close(),
      gaveUp: (lastError) => {
        const last = lastError ? ` (last attempt: ${lastError.message})` : '';
        this.gone(
          link,
          `lost the connection to dispyscheduler ${this.where}; not back within its grace period of ${graceSeconds} s${last}`,
        );
      },
    });
    reconnection.setActive(this.active);
    this.reconnection = reconnection;
    void reconnection.ended.then(() => {
      if (this.reconnection === reconnection) this.reconnection = undefined;
    });
  }

  /** On the new connection: Reattach, then the jobs the scheduler never got are sent again. */
  private async takeBack(link: NodeLink): Promise<void> {
    await reattachComputations<RemoteJob<Ref>>(link, {
      logger: this.options.logger,
      sentTo: () => [...this.jobs.values()].filter((job) => job.sent !== undefined),
      resend: (job) => this.sendJobFrame(job, job.sent!),
      cancelledBeforeSent: (job) => {
        this.jobs.delete(job.uid);
        this.spec!.events.jobFailed(job, 'cancelled', 'cancelled before it ran');
      },
      lostComputation: (_link, _computeId, _jobs, why) => {
        this.gone(link, `dispyscheduler ${this.where} ${why.replace(/^node \S+ \([^)]*\) /, '')}`);
        return Promise.resolve();
      },
    });
    if (this.link === link && link.connection.isClosed)
      throw new DispyError(ErrorCode.NO_ANSWER, `dispyscheduler ${this.where} closed the new connection`);
  }

  /** The computation is gone at the scheduler (or the link given up): its jobs sent are over; the next submit sets it up again. */
  private gone(link: NodeLink, why: string): void {
    if (link !== this.link) return;
    this.link = undefined;
    // A reconnection in progress ends here (its attempt took the computation back, and found it gone).
    this.reconnection?.stop();
    this.reconnection = undefined;
    link.close();
    this.options.logger.warn(`${why}; the next job submitted sets the computation up again`);
    const events = this.spec!.events;
    const nodes = [...this.nodes.values()];
    this.nodes.clear();
    const sent = [...this.jobs.values()].filter((job) => !job.request);
    for (const job of sent) this.jobs.delete(job.uid);
    for (const node of nodes) {
      events.nodeDown(
        node,
        sent.filter((job) => job.nodeKey === node.key),
        why,
      );
    }
    for (const job of sent) if (!nodes.some((node) => node.key === job.nodeKey)) events.jobFailed(job, 'cancelled', why);
    // Jobs submitted while it was being lost wait for the next connection.
    if (!this.closed && [...this.jobs.values()].some((job) => job.request)) this.ready().catch(() => undefined);
  }

  private nodeOf(key: string): NodeInfo {
    const known = this.nodes.get(key);
    if (known) return known;
    const at = key.lastIndexOf(':');
    return nodeFromDescription({ host: key.slice(0, at), port: Number(key.slice(at + 1)) });
  }

  private jobReply(reply: dispy.JobReply): void {
    const uid = Number(reply.jobId);
    if (reply.status !== dispy.JobStatus.PROVISIONAL && this.link) {
      // Acknowledged even when it is a duplicate (resent after a reconnect); counted for a Reattach.
      this.link.connection.ack(reply.computeId, uid);
      this.link.replyArrived(reply.computeId, uid);
    }
    const job = this.jobs.get(uid);
    if (!job) return;
    const events = this.spec!.events;
    const node = reply.nodeKey ? this.nodeOf(reply.nodeKey) : undefined;
    if (reply.status === dispy.JobStatus.PROVISIONAL) {
      if (node) events.jobProvisional(job, reply.result, node);
      return;
    }
    this.jobs.delete(uid);
    this.link?.jobEnded(reply.computeId, uid);
    const status = endStatus(reply.status);
    if (reply.failed || !node) {
      events.jobFailed(job, status === 'finished' ? 'terminated' : status, reply.exception, node);
      return;
    }
    events.jobDone(
      job,
      {
        status,
        result: reply.result,
        stdout: reply.stdout,
        stderr: reply.stderr,
        exception: reply.exception,
        startTime: reply.startTime,
        endTime: reply.endTime,
        cpuTime: reply.cpuTime,
      },
      node,
    );
  }

  private jobEvent(event: dispy.JobEvent): void {
    if (event.event === dispy.JobEvent.Event.RUNNING) {
      const node = this.nodeOf(event.nodeKey);
      const started: Array<{ job: RemoteJob<Ref>; startTime: number }> = [];
      event.jobIds.forEach((id, index) => {
        const job = this.jobs.get(Number(id));
        if (job && job.nodeKey === node.key) started.push({ job, startTime: Number(event.startTimes[index] ?? 0) });
      });
      if (started.length > 0) this.spec!.events.jobsRunning(started, node);
      return;
    }
    const job = this.jobs.get(Number(event.jobId));
    if (!job) return;
    const node = this.nodeOf(event.nodeKey);
    if (event.event === dispy.JobEvent.Event.STARTED) {
      job.nodeKey = node.key;
      this.spec!.events.jobStarted(job, node);
    } else if (event.event === dispy.JobEvent.Event.REQUEUED) {
      job.nodeKey = undefined;
      this.spec!.events.jobRequeued(job, node);
    }
  }

  private nodeStatus(status: dispy.NodeStatus): void {
    const events = this.spec!.events;
    const described = status.node;
    const key = `${described?.host ?? ''}:${described?.port ?? 0}`;
    const info = nodeFromDescription(described, this.nodes.get(key));
    switch (status.event) {
      case dispy.NodeStatus.Event.UP:
        this.nodes.set(key, info);
        events.nodeUp(info);
        break;
      case dispy.NodeStatus.Event.DOWN: {
        this.nodes.delete(key);
        const lost: RemoteJob<Ref>[] = [];
        for (const id of status.lostJobIds) {
          const job = this.jobs.get(Number(id));
          if (!job) continue;
          this.jobs.delete(job.uid);
          lost.push(job);
        }
        events.nodeDown(info, lost, status.why);
        break;
      }
      case dispy.NodeStatus.Event.FAILED:
        events.nodeFailed(info, status.why);
        break;
      case dispy.NodeStatus.Event.AVAIL:
        if (this.nodes.has(key)) events.nodeAvailInfo(info);
        break;
    }
  }
}
