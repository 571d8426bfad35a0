import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { DispyError, ErrorCode, type dispy } from '@dispy/protocol';
import { SchedulingEngine } from '../engine/scheduling-engine.js';
import { NodeFinder } from '../discovery/node-finder.js';
import { ComputationSetup } from './computation-setup.js';
import { sendJob } from './job-sender.js';
import { HeldJobs } from './held-jobs.js';
import { HostNames } from './host-names.js';
import { IdleWatch } from './idle-watch.js';
import { reattachComputations } from './link-recovery.js';
import { DEFAULT_MAX_RETRIES, type Discovery, type JobSchedulerOptions } from './job-scheduler-options.js';
import { jobFilesConfig } from './job-files.js';
import type { JobFilesConfig, NodeLink } from './node-link.js';
import { NodePool } from './node-pool.js';
import type { ClusterScheduler } from './cluster-scheduler.js';
import { ReplyRouter } from './reply-router.js';
import type {
  ComputationSpec,
  JobEndStatus,
  JobOutcome,
  JobRequest,
  LocalFile,
  NodeAllocator,
  NodeInfo,
  QueuedJob,
  SchedulerJob,
} from './types.js';

/**
 * The scheduler that JobCluster embeds and dispyscheduler hosts: it finds nodes (discovery),
 * asks each computation's allocators which to use, keeps one authenticated connection per node
 * (`NodePool`), sets computations up there (`ComputationSetup`), and runs the engine's choices:
 * jobs go out as frames (`sendJob`), frames from nodes come back through `ReplyRouter` and become
 * events of their computation.
 *
 * `Ref` is what the submitter keeps per job, `Owner` what allocators get as their first argument,
 * `Alloc` the allocators' type (handed back to `ComputationSpec.nodeExtras`).
 */
export class JobScheduler<
  Ref = unknown,
  Owner = unknown,
  Alloc extends NodeAllocator<Owner> = NodeAllocator<Owner>,
> implements ClusterScheduler<Ref, Owner, Alloc> {
  private readonly engine: SchedulingEngine<QueuedJob<Ref>>;
  private readonly finder: Discovery;
  private readonly pool: NodePool;
  private readonly setups: ComputationSetup<Ref, Owner, Alloc>;
  private readonly router: ReplyRouter<Ref>;
  private readonly computations = new Map<string, ComputationSpec<Ref, Owner, Alloc>>();
  /** Jobs not ended yet, by uid. */
  private readonly jobs = new Map<number, QueuedJob<Ref>>();
  private readonly held: HeldJobs<Ref>;
  /** closeNode calls waiting for a computation's last running job on a node. */
  private readonly idle: IdleWatch;
  /** Host names of `nodes` (a name that does not resolve is resolved again later, alone). */
  private readonly hostNames: HostNames;
  /** The address each node (by key) answered discovery from: where to ping it again when it goes away. */
  private readonly foundAt = new Map<string, string>();
  private nextUid = 1;
  private started?: Promise<void>;
  private closed = false;

  constructor(private readonly options: JobSchedulerOptions) {
    const { logger } = options;
    this.engine = new SchedulingEngine<QueuedJob<Ref>>(
      {
        dispatch: (key, job) => this.dispatch(key, job),
        reclaim: (key, jobs) => this.reclaim(key, jobs),
        // A job whose files went ahead of it stays with them; one being cancelled is not moved.
        movable: (job) => !job.files?.length && !job.cancelled,
      },
      options.engine,
    );
    const onReply = (reply: dispy.DiscoveryReply, address: string): void => void this.onDiscovered(reply, address);
    this.finder =
      options.discovery?.(onReply) ??
      new NodeFinder({
        secret: options.secret,
        bindHost: options.discoveryAddrs && options.discoveryAddrs.length > 0 ? options.discoveryAddrs : options.ipAddr,
        ipv4Multicast: options.ipv4Multicast,
        bindPort: options.port,
        portIsDefault: options.portIsDefault,
        nodePort: options.nodePort,
        clientName: options.clientName,
        logger,
        pingInterval: options.pingInterval,
        onReply,
        hasNodes: () => this.pool.all().length > 0,
      });
    this.pool = new NodePool({
      secret: options.secret,
      tls: options.tls,
      clientName: options.clientName,
      localAddress: options.ipAddr,
      logger,
      onFrame: (link, frame, attachment) => this.router.route(link, frame, attachment),
      onGone: (link, error) => this.nodeGone(link, error),
      mayReconnect: (link) => !this.closed && link.computeIds.size > 0 && link.zombieSeconds > 0,
      onLost: (link, error) => this.linkLost(link, error),
      onBack: (link) => this.linkBack(link),
      connect: options.connect,
    });
    this.setups = new ComputationSetup(this.pool, logger);
    this.hostNames = new HostNames({
      resolve: (name) => this.resolve(name),
      resolved: (allocator, addresses) => {
        if (this.closed) return;
        for (const address of addresses) {
          allocator.resolved.add(address);
          this.finder.addHost(address, allocator.port);
        }
        this.finder.pingNow();
      },
      wanted: (allocator) => [...this.computations.values()].some((spec) => spec.allocators.some((candidate) => candidate === allocator)),
      logger,
    });
    this.held = new HeldJobs<Ref>({
      engine: this.engine,
      addressOfNode: (name) => this.pool.named(name)?.info.host,
      resolve: (name) => this.resolve(name),
      drop: (job) => this.drop(job),
      eventsOf: (computeId) => this.computations.get(computeId)?.events,
    });
    this.idle = new IdleWatch((nodeKey) => (this.pool.get(nodeKey) ? this.engine.runningOn(nodeKey) : []));
    this.router = new ReplyRouter<Ref>({
      logger,
      jobFiles: this.jobFilesConfig(),
      job: (uid) => this.jobs.get(uid),
      replied: (job, link, outcome) => this.replied(job, link, outcome),
      provisional: (job, link, result) => this.eventsOf(job)?.jobProvisional(job, result, link.info),
      refused: (job, link, why) => this.end(job, 'cancelled', `node ${link.key} refused the job: ${why}`, link),
      requeue: (job, link) => {
        this.engine.jobDone(link.key, job.uid);
        this.requeue(job, link.info);
        this.idle.check(link.key);
      },
      running: (link, started) => {
        for (const { job } of started) this.engine.jobStarted(link.key, job.uid);
        const byComputation = new Map<string, Array<{ job: QueuedJob<Ref>; startTime: number }>>();
        for (const entry of started) getOrCreateList(byComputation, entry.job.computeId).push(entry);
        for (const [computeId, entries] of byComputation) this.computations.get(computeId)?.events.jobsRunning(entries, link.info);
      },
      availInfo: (link) => {
        for (const computeId of link.computeIds) this.computations.get(computeId)?.events.nodeAvailInfo(link.info);
      },
      nodeCpus: (link, cpus) => {
        link.nodeCpus = cpus;
        this.restoreCpus(link);
        logger.info(`node ${link.info.name} (${link.key}) now offers ${link.nodeCpus} CPUs`);
      },
    });
  }

  /** Files sent by jobs: see `jobFilesConfig`; dispyscheduler relays them (option `relayJobFiles`). */
  private jobFilesConfig(): JobFilesConfig {
    const { relayJobFiles } = this.options;
    return jobFilesConfig(
      this.options,
      (link, chunk) => {
        const job = this.jobs.get(Number(chunk.jobId));
        return job !== undefined && job.nodeKey === link.key && job.computeId === chunk.computeId;
      },
      relayJobFiles && ((link) => relayJobFiles(link, (uid) => this.jobs.get(uid))),
    );
  }

  /**
   * Starts looking for nodes for `spec`; rejects when discovery cannot start. A host name that does
   * not resolve is warned about and resolved again later, alone (the other nodes are used).
   */
  async addComputation(spec: ComputationSpec<Ref, Owner, Alloc>): Promise<void> {
    this.computations.set(spec.computeId, spec);
    this.held.added(spec.computeId, spec.events);
    // A host name that does not resolve affects only itself: it is resolved again later.
    for (const allocator of spec.allocators) {
      if (allocator.isWildcard || net.isIP(allocator.host)) await this.lookFor(allocator);
      else await this.hostNames.lookFor(allocator);
    }
    this.started ??= this.finder.start();
    await this.started;
    this.finder.pingNow();
  }

  /**
   * Queues a job; it is dispatched to a node in a later pass. A job that must wait first (its
   * pinned host name to resolve, its files to describe) is held meanwhile; when that fails, it
   * ends with `jobFailed`.
   */
  submit(request: JobRequest<Ref>): SchedulerJob<Ref> {
    const { files, pin, ...rest } = request;
    const job: QueuedJob<Ref> = { ...rest, uid: this.nextUid++, attempt: 0 };
    if (pin && 'key' in pin) job.pinnedHost = pin.key;
    this.jobs.set(job.uid, job);
    // Jobs wait: discovery warns when no node is found for them (see Discovery.setActive).
    if (this.options.activeWhileJobs && this.jobs.size === 1) this.setActive(true);
    const name = pin && 'host' in pin ? pin.host : undefined;
    if (name !== undefined && net.isIP(name)) job.pinnedHost = name;
    const lookupName = name !== undefined && !net.isIP(name) ? name : undefined;
    if (!files?.length && lookupName === undefined) {
      this.engine.submit(job);
    } else {
      this.held.hold(job, files ?? [], lookupName);
    }
    return job;
  }

  /**
   * Cancels a job: `'dequeued'` when it was waiting (it is forgotten, with no event: the caller
   * ends it), `'sent'` when it is on a node (it ends with its node's reply, or `jobFailed` if it
   * had not gone out yet), `'unknown'` when it is done or not ours.
   */
  cancel(job: SchedulerJob<Ref>): 'dequeued' | 'sent' | 'unknown' {
    const queued = this.jobs.get(job.uid);
    if (!queued) return 'unknown';
    if (this.engine.dequeue(queued.uid)) {
      this.forget(queued);
      return 'dequeued';
    }
    const link = queued.nodeKey ? this.pool.get(queued.nodeKey) : undefined;
    if (!link) return 'unknown';
    // A job whose files are still going out is not on the node yet: it is not sent at all.
    queued.cancelled = true;
    link.connection.send({ cancel: { computeId: queued.computeId, jobId: queued.uid } });
    return 'sent';
  }

  /** Forgets a waiting job without telling anyone (for a cluster giving up on it); false when it is not ours. */
  drop(job: SchedulerJob<Ref>): boolean {
    const queued = this.jobs.get(job.uid);
    if (!queued) return false;
    this.engine.dequeue(queued.uid);
    this.forget(queued);
    return true;
  }

  /** Nodes serving a computation now. */
  nodesOf(computeId: string): NodeInfo[] {
    return this.pool.serving(computeId).map((link) => {
      link.countTraffic();
      return link.info;
    });
  }

  /** Jobs running on (sent to) a node now. */
  runningOn(nodeKey: string): SchedulerJob<Ref>[] {
    return this.engine.runningOn(nodeKey);
  }

  /** Adds a way of choosing nodes to a computation; nodes already known are asked again. */
  async allocate(computeId: string, allocator: Alloc): Promise<void> {
    const spec = this.computations.get(computeId);
    if (!spec) return;
    spec.allocators.push(allocator);
    const deallocated = [...(spec.excluded ?? [])];
    spec.excluded?.clear();
    // A node deallocated but still set up takes the computation's jobs again when the new
    // allocator wants it (discovery never sets a computation up twice on one node).
    for (const key of deallocated) {
      const link = this.pool.get(key);
      if (!link || link.state !== 'up' || !link.computeIds.has(computeId)) continue;
      const { host, port, name, totalCpus, platform } = link.info;
      const one = { ...spec, allocators: [allocator] };
      if (!this.setups.allocate(one, { tcpHost: host, tcpPort: port, name, cpus: totalCpus, platform, availInfo: undefined })) continue;
      this.engine.addNode(link.key, host, link.nodeCpus === 0 ? 0 : link.info.cpus, computeId);
      this.engine.setNodeShare(link.key, link.nodeCpus);
      this.options.logger.info(`node ${name} (${key}) takes jobs of ${spec.name} again`);
    }
    await this.lookFor(allocator);
    this.finder.pingNow();
  }

  /** Stops sending a computation's jobs to a node; its running jobs finish. */
  deallocate(computeId: string, nodeKey: string): boolean {
    const link = this.pool.get(nodeKey);
    const spec = this.computations.get(computeId);
    if (!link || !spec || !link.computeIds.has(computeId)) return false;
    (spec.excluded ??= new Set()).add(nodeKey);
    this.engine.removeComputation(nodeKey, computeId);
    return true;
  }

  /**
   * Closes a computation on one node: no new jobs go there; its running jobs are terminated
   * (`terminatePending`) or finish first. The node is then released for this computation.
   * Resolves false when the node does not serve the computation.
   */
  async closeNode(computeId: string, nodeKey: string, terminatePending: boolean): Promise<boolean> {
    if (!this.deallocate(computeId, nodeKey)) return false;
    const link = this.pool.get(nodeKey)!;
    if (!terminatePending) await this.idle.whenIdle(nodeKey, computeId);
    if (this.pool.get(nodeKey) !== link) return true;
    await this.release(link, computeId, terminatePending, 'the node was closed for this computation');
    return true;
  }

  /**
   * Uses `cpus` CPUs of a node for a computation (at most what the node offers); resolves with
   * the CPUs now used, or -1 when the node does not serve the computation, refuses, does not
   * answer or goes away (logged).
   */
  async setNodeCpus(computeId: string, nodeKey: string, cpus: number): Promise<number> {
    const link = this.pool.get(nodeKey);
    if (!link || !link.computeIds.has(computeId)) return -1;
    let answer: dispy.SetCpusReply;
    try {
      answer = await link.connection.setCpus(computeId, cpus);
    } catch (error) {
      this.options.logger.warn((error as Error).message);
      return -1;
    }
    if (answer.error) {
      this.options.logger.warn(`node ${link.key}: ${answer.error}`);
      return -1;
    }
    link.info.cpus = answer.cpus;
    this.restoreCpus(link);
    return answer.cpus;
  }

  /** Copies a file to a node, into the computation's directory (cluster.sendFile); false when the node does not serve it. */
  async sendFile(computeId: string, nodeKey: string, file: LocalFile): Promise<boolean> {
    const link = this.pool.get(nodeKey);
    if (!link || !link.computeIds.has(computeId)) return false;
    await link.sendFiles(computeId, [file]);
    return true;
  }

  /** Keeps the process alive (work is pending) or lets it exit when idle. */
  setActive(active: boolean): void {
    this.finder.setActive(active);
    this.pool.setActive(active);
  }

  /**
   * Closes a computation on its nodes (killing its running jobs) and forgets it with its jobs: the
   * waiting ones leave the queue at once, the running ones free their nodes' slots once the nodes
   * have closed it (dispyscheduler closes one client's computation while the others go on).
   */
  async closeComputation(computeId: string): Promise<void> {
    const jobs = [...this.jobs.values()].filter((job) => job.computeId === computeId);
    for (const job of jobs) if (this.engine.dequeue(job.uid)) this.forget(job);
    await Promise.all(this.pool.serving(computeId).map((link) => this.release(link, computeId, true, 'the computation was closed')));
    this.computations.delete(computeId);
    this.engine.forgetComputation(computeId);
    for (const job of jobs) {
      if (this.jobs.get(job.uid) !== job) continue;
      if (job.nodeKey !== undefined) this.engine.jobDone(job.nodeKey, job.uid);
      this.forget(job);
      if (job.nodeKey !== undefined) this.idle.check(job.nodeKey);
    }
  }

  /** Stops discovery and hangs up on every node. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.computations.keys()].map((id) => this.closeComputation(id)));
    this.hostNames.close();
    this.finder.close();
    this.pool.close();
    this.idle.close();
    this.held.close();
  }

  /** Points discovery at an allocator's nodes: broadcast for a pattern, else its addresses. */
  private async lookFor(allocator: Alloc): Promise<void> {
    if (allocator.isWildcard) {
      this.finder.enableBroadcast(allocator.port);
    } else if (net.isIP(allocator.host)) {
      this.finder.addHost(allocator.host, allocator.port);
    } else {
      for (const address of await this.resolve(allocator.host)) {
        allocator.resolved.add(address);
        this.finder.addHost(address, allocator.port);
      }
    }
  }

  private async resolve(name: string): Promise<string[]> {
    if (this.options.lookup) return this.options.lookup(name);
    return (await lookup(name, { all: true })).map(({ address }) => address);
  }

  /** Closes a computation on a node (best effort: a node that does not answer is gone anyway); a node left with none is hung up on. */
  private async release(link: NodeLink, computeId: string, terminatePending: boolean, why: string): Promise<void> {
    // Idle connections are unref'd; keep this one alive until the node has answered.
    link.connection.setActive(true);
    await link.connection.closeComputation(computeId, terminatePending).catch((error: Error) => this.options.logger.debug(error.message));
    link.computeIds.delete(computeId);
    this.engine.removeComputation(link.key, computeId);
    this.computations.get(computeId)?.events.nodeDown(link.info, [], why);
    // Another computation being set up there keeps the link (dispyscheduler: a client arriving as another leaves).
    if (link.computeIds.size === 0 && !this.setups.settingUp(link)) {
      this.pool.hangUp(link);
      this.engine.removeNode(link.key);
      this.idle.check(link.key);
    }
  }

  private async onDiscovered(reply: dispy.DiscoveryReply, address: string): Promise<void> {
    if (this.closed) return;
    const key = `${reply.tcpHost}:${reply.tcpPort}`;
    const existing = this.pool.get(key);
    // A node whose link is being reconnected is set up for nothing more until it is back.
    if (existing && existing.state !== 'up') return;
    if (!existing && (reply.busy || reply.cpus === 0)) {
      this.options.logger.debug(`node ${reply.name} (${key}) is busy; will ask again`);
      return;
    }
    // A node we are connected to counts us as its client: the CPUs it offers others (0) are ours
    // to give another computation of this scheduler (dispyscheduler adds them one by one).
    const offer = existing ? { ...reply, cpus: Math.min(existing.nodeCpus, reply.totalCpus || existing.info.totalCpus) } : reply;
    const wanted = [];
    for (const spec of this.computations.values()) {
      if (existing?.computeIds.has(spec.computeId) || spec.excluded?.has(key)) continue;
      const allocation = this.setups.allocate(spec, offer);
      if (allocation) wanted.push({ spec, allocation });
    }
    if (wanted.length === 0) {
      this.options.logger.debug(`node ${reply.name} (${key}): no computation here wants it (its nodes, or set up there already)`);
      return;
    }
    const link = existing ?? (await this.pool.connect(reply, this.jobs.size > 0));
    if (!link) return;
    this.foundAt.set(link.key, address);
    this.finder.found(address, true, reply.tcpPort);
    for (const { spec, allocation } of wanted) {
      const answer = await this.setups.setUp(link, spec, allocation);
      // Not now (the node is taken): pinging it goes on, with backoff, until it takes the computation.
      if (answer === 'later') this.finder.found(address, false, reply.tcpPort);
      else if (answer) this.serve(link, spec, answer);
    }
  }

  /** A computation is set up on a node: the node takes its jobs from now on. */
  private serve(link: NodeLink, spec: ComputationSpec<Ref, Owner, Alloc>, answer: dispy.SetupReply): void {
    if (!this.computations.has(spec.computeId) || this.closed || this.pool.get(link.key) !== link) return;
    link.computeIds.add(spec.computeId);
    link.info.cpus = answer.cpus;
    if (spec.pulseInterval > 0) this.pool.watchPulses(link, spec.pulseInterval);
    this.options.logger.info(`node ${link.info.name} (${link.key}) serves ${answer.cpus} CPUs to ${spec.name}`);
    spec.events.nodeUp(link.info);
    this.engine.addNode(link.key, link.info.host, link.nodeCpus === 0 ? 0 : answer.cpus, spec.computeId);
    // A shared node may have said already how many of its CPUs are this client's to fill (NodeCpus).
    this.engine.setNodeShare(link.key, link.nodeCpus);
  }

  private dispatch(key: string, job: QueuedJob<Ref>): void {
    const link = this.pool.get(key)!;
    job.nodeKey = key;
    job.attempt++;
    this.eventsOf(job)?.jobStarted(job, link.info);
    sendJob(link, job, {
      logger: this.options.logger,
      stillSent: (sent, to, attempt) => sent.attempt === attempt && sent.nodeKey === to.key && this.jobs.get(sent.uid) === sent,
      failed: (failed, at, status, why) => this.end(failed, status, why, at),
    });
  }

  /** Asks a node to give back jobs it has not started, for nodes with idle CPUs (see SchedulingEngine.rebalance). */
  private reclaim(key: string, jobs: QueuedJob<Ref>[]): void {
    const link = this.pool.get(key);
    const byComputation = new Map<string, QueuedJob<Ref>[]>();
    for (const job of jobs) getOrCreateList(byComputation, job.computeId).push(job);
    for (const [computeId, asked] of byComputation) {
      const uids = asked.map((job) => job.uid);
      if (!link || link.state !== 'up') {
        this.engine.reclaimed(key, uids, []);
        continue;
      }
      this.options.logger.debug(`node ${key}: asking back ${uids.length} job(s) not started there, for nodes with idle CPUs`);
      link.connection.reclaim(computeId, uids).then(
        (dropped) => this.reclaimed(link, uids, dropped),
        (error: Error) => {
          this.options.logger.debug(`node ${key}: reclaim: ${error.message}`);
          this.reclaimed(link, uids, []);
        },
      );
    }
  }

  /** A node gave back `dropped` of the jobs asked: each goes back to the queue (or ends, if cancelled meanwhile). */
  private reclaimed(link: NodeLink, asked: number[], dropped: number[]): void {
    for (const job of this.engine.reclaimed(link.key, asked, dropped)) {
      if (this.jobs.get(job.uid) !== job || job.nodeKey !== link.key) continue;
      if (job.cancelled) {
        this.end(job, 'cancelled', 'cancelled before it ran', link);
        continue;
      }
      this.requeue(job, link.info);
    }
    this.idle.check(link.key);
  }

  private replied(job: QueuedJob<Ref>, link: NodeLink, outcome: JobOutcome): void {
    this.forget(job);
    this.engine.jobDone(link.key, job.uid, outcome.endTime - outcome.startTime);
    this.eventsOf(job)?.jobDone(job, outcome, link.info);
    this.idle.check(link.key);
  }

  /** A job handed to `link` ends without its reply. */
  private end(job: QueuedJob<Ref>, status: Exclude<JobEndStatus, 'finished'>, why: string, link: NodeLink): void {
    this.forget(job);
    this.engine.jobDone(link.key, job.uid);
    this.eventsOf(job)?.jobFailed(job, status, why, link.info);
    this.idle.check(link.key);
  }

  private requeue(job: QueuedJob<Ref>, from: NodeInfo): void {
    job.nodeKey = undefined;
    job.cancelled = undefined;
    this.engine.submit(job);
    this.eventsOf(job)?.jobRequeued(job, from);
  }

  /** The job has ended: the scheduler lets go of it and of its arguments. */
  private forget(job: QueuedJob<Ref>): void {
    this.jobs.delete(job.uid);
    job.args = undefined;
    if (this.options.activeWhileJobs && this.jobs.size === 0) this.setActive(false);
  }

  private eventsOf(job: QueuedJob<Ref>) {
    return this.computations.get(job.computeId)?.events;
  }

  private nodeGone(link: NodeLink, error?: Error): void {
    const why = `node ${link.info.name} (${link.key}) went away${error ? `: ${error.message}` : ''}`;
    if (!this.closed) this.options.logger.warn(why);
    const lostBy = this.settleLost(this.engine.removeNode(link.key), link, why);
    for (const computeId of link.computeIds) {
      this.computations.get(computeId)?.events.nodeDown(link.info, lostBy.get(computeId) ?? [], why);
    }
    this.idle.check(link.key);
    this.lookAgain(link);
  }

  /**
   * Pings a node that went away again, so that discovery sets it up anew when it is back: at the
   * address it answered discovery from, which is where pings reach it (its `tcpHost`, an
   * `--ext-host`, may be a relay or a NAT's address that does not answer them).
   */
  private lookAgain(link: NodeLink): void {
    if (this.closed) return;
    this.finder.found(this.foundAt.get(link.key) ?? link.info.host, false, link.info.port);
    this.finder.pingNow();
  }

  /**
   * The dead-node rules, for jobs a node had when it died (or lost their computation), already
   * out of the engine: a reentrant job (not pinned) goes back to the queue for another node, at
   * most `maxRetries` times, then ends terminated with the reasons; the others are returned by
   * computation, to be reported lost (`nodeDown`, which ends them cancelled).
   */
  private settleLost(jobs: QueuedJob<Ref>[], link: NodeLink, why: string): Map<string, QueuedJob<Ref>[]> {
    const lostBy = new Map<string, QueuedJob<Ref>[]>();
    for (const job of jobs) {
      const spec = this.computations.get(job.computeId);
      if (spec?.reentrant && job.pinnedHost === undefined) {
        (job.failures ??= []).push(why);
        const maxRetries = spec.maxRetries ?? DEFAULT_MAX_RETRIES;
        if (job.failures.length <= maxRetries) {
          this.requeue(job, link.info);
        } else {
          const reasons = job.failures.map((reason, index) => `${index + 1}. ${reason}`).join('; ');
          this.end(job, 'terminated', `its node died ${job.failures.length} times, more than maxRetries (${maxRetries}): ${reasons}`, link);
        }
      } else {
        job.nodeKey = undefined;
        this.forget(job);
        lostBy.set(job.computeId, [...(lostBy.get(job.computeId) ?? []), job]);
      }
    }
    return lostBy;
  }

  /** A node's link was lost (not by us): its jobs stay where they are while it is reconnected; it takes no new ones. */
  private linkLost(link: NodeLink, error?: Error): void {
    const running = this.engine.runningOn(link.key).length;
    this.options.logger.warn(
      `lost the link to node ${link.info.name} (${link.key})${error ? `: ${error.message}` : ''}; ` +
        `its ${running} job${running === 1 ? '' : 's'} keep${running === 1 ? 's' : ''} running there; reconnecting for up to ${link.zombieSeconds} s`,
    );
    this.engine.setNodeCpus(link.key, 0);
  }

  /** A lost link has a new connection: takes its computations back and settles their jobs, then gives it jobs again. */
  private async linkBack(link: NodeLink): Promise<void> {
    await reattachComputations(link, {
      logger: this.options.logger,
      sentTo: (at, computeId) => this.engine.runningOn(at.key).filter((job) => job.computeId === computeId),
      resend: (job, at) => {
        this.engine.jobDone(at.key, job.uid);
        this.requeue(job, at.info);
      },
      cancelledBeforeSent: (job, at) => this.end(job, 'cancelled', 'cancelled before it ran', at),
      lostComputation: (at, computeId, jobs, why) => this.lostComputation(at, computeId, jobs, why),
    });
    if (link.connection.isClosed) throw new DispyError(ErrorCode.NO_ANSWER, `node ${link.key} closed the new connection`);
    this.restoreCpus(link, true);
  }

  /**
   * Gives the engine the CPUs of a node as they are now, unless its link is down: a job
   * dispatched before its computations are taken back would not be among the jobs the node
   * holds, and would be sent twice. Its computation's CPUs, none when it takes no new jobs
   * (NodeCpus 0); with fewer than those to fill (NodeCpus: a node shared with other clients, or
   * offering fewer CPUs), it ranks as that much more loaded.
   */
  private restoreCpus(link: NodeLink, coming = false): void {
    if (link.state !== 'up' && !coming) return;
    this.engine.setNodeCpus(link.key, link.nodeCpus === 0 ? 0 : link.info.cpus);
    this.engine.setNodeShare(link.key, link.nodeCpus);
  }

  /**
   * A node came back without a computation of ours (it restarted, or its zombie interval passed):
   * the jobs of that computation still out there go by the dead-node rules, and the node stops
   * serving it (with none left, it is hung up on; discovery may set it up again).
   */
  private async lostComputation(link: NodeLink, computeId: string, jobs: QueuedJob<Ref>[], why: string): Promise<void> {
    this.options.logger[jobs.length > 0 ? 'warn' : 'info'](why);
    for (const job of jobs) this.engine.jobDone(link.key, job.uid);
    const lost = this.settleLost(jobs, link, why).get(computeId) ?? [];
    link.computeIds.delete(computeId);
    this.engine.removeComputation(link.key, computeId);
    this.computations.get(computeId)?.events.nodeDown(link.info, lost, why);
    // What the node kept of it (saved replies, a computation not live) is of no use any more.
    await link.connection.closeComputation(computeId, true).catch((error: Error) => this.options.logger.debug(error.message));
    if (link.computeIds.size === 0 && this.pool.get(link.key) === link) {
      this.pool.hangUp(link);
      this.engine.removeNode(link.key);
      this.idle.check(link.key);
      this.lookAgain(link);
    }
  }
}

function getOrCreateList<K, V>(map: Map<K, V[]>, key: K): V[] {
  let list = map.get(key);
  if (!list) {
    list = [];
    map.set(key, list);
  }
  return list;
}
