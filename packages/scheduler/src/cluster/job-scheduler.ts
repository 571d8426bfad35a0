import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { dispy } from '@dispy/protocol';
import { SchedulingEngine } from '../engine/scheduling-engine.js';
import { NodeFinder } from '../discovery/node-finder.js';
import { ComputationSetup } from './computation-setup.js';
import { sendJob } from './job-sender.js';
import { HeldJobs } from './held-jobs.js';
import { HostNames } from './host-names.js';
import { IdleWatch } from './idle-watch.js';
import { JobLedger } from './job-ledger.js';
import { JobReclaim } from './job-reclaim.js';
import { getOrCreateList } from './list-map.js';
import { NodeArrival } from './node-arrival.js';
import type { Discovery, JobSchedulerOptions } from './job-scheduler-options.js';
import { jobFilesConfig } from './job-files.js';
import type { JobFilesConfig } from './node-link.js';
import { NodeLoss, restoreCpus } from './node-loss.js';
import { NodeOperations } from './node-operations.js';
import { NodePool } from './node-pool.js';
import type { ClusterScheduler } from './cluster-scheduler.js';
import { ReplyRouter } from './reply-router.js';
import type { ComputationSpec, JobRequest, LocalFile, NodeAllocator, NodeInfo, QueuedJob, SchedulerJob } from './types.js';

/**
 * The scheduler that JobCluster embeds and dispyscheduler hosts: it finds nodes (discovery),
 * asks each computation's allocators which to use, keeps one authenticated connection per node
 * (`NodePool`), sets computations up there (`ComputationSetup`), and runs the engine's choices:
 * jobs go out as frames (`sendJob`), frames from nodes come back through `ReplyRouter` and become
 * events of their computation. Its parts: `JobLedger` (computations, jobs not ended, how a job
 * ends), `NodeArrival` (a node found: set up, served), `NodeLoss` (a node gone, a link lost and
 * back), `NodeOperations` (allocateNode, closeNode, setNodeCpus, sendFile...), `JobReclaim`.
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
  /** The computations and their jobs not ended yet. */
  private readonly ledger: JobLedger<Ref, Owner, Alloc>;
  private readonly arrival: NodeArrival<Ref, Owner, Alloc>;
  private readonly loss: NodeLoss<Ref, Owner, Alloc>;
  private readonly reclaims: JobReclaim<Ref, Owner, Alloc>;
  private readonly nodeOps: NodeOperations<Ref, Owner, Alloc>;
  private readonly held: HeldJobs<Ref>;
  /** closeNode calls waiting for a computation's last running job on a node. */
  private readonly idle: IdleWatch;
  /** Host names of `nodes` (a name that does not resolve is resolved again later, alone). */
  private readonly hostNames: HostNames;
  private nextUid = 1;
  private started?: Promise<void>;
  private closed = false;

  constructor(private readonly options: JobSchedulerOptions) {
    const { logger } = options;
    this.engine = new SchedulingEngine<QueuedJob<Ref>>(
      {
        dispatch: (key, job) => this.dispatch(key, job),
        reclaim: (key, jobs) => this.reclaims.reclaim(key, jobs),
        // A job whose files went ahead of it stays with them; one being cancelled is not moved.
        movable: (job) => !job.files?.length && !job.cancelled,
      },
      options.engine,
    );
    this.idle = new IdleWatch((nodeKey) => (this.pool.get(nodeKey) ? this.engine.runningOn(nodeKey) : []));
    this.ledger = new JobLedger({
      engine: this.engine,
      idle: this.idle,
      emptied: () => {
        if (this.options.activeWhileJobs) this.setActive(false);
      },
    });
    const onReply = (reply: dispy.DiscoveryReply, address: string): void => void this.arrival.discovered(reply, address);
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
      onGone: (link, error) => this.loss.nodeGone(link, error),
      mayReconnect: (link) => !this.closed && link.computeIds.size > 0 && link.zombieSeconds > 0,
      onLost: (link, error) => this.loss.linkLost(link, error),
      onBack: (link) => this.loss.linkBack(link),
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
      wanted: (allocator) =>
        [...this.ledger.computations.values()].some((spec) => spec.allocators.some((candidate) => candidate === allocator)),
      logger,
    });
    this.held = new HeldJobs<Ref>({
      engine: this.engine,
      addressOfNode: (name) => this.pool.named(name)?.info.host,
      resolve: (name) => this.resolve(name),
      drop: (job) => this.drop(job),
      eventsOf: (computeId) => this.ledger.computations.get(computeId)?.events,
    });
    this.arrival = new NodeArrival({
      engine: this.engine,
      pool: this.pool,
      ledger: this.ledger,
      setups: this.setups,
      finder: this.finder,
      logger,
      isClosed: () => this.closed,
    });
    this.reclaims = new JobReclaim({ engine: this.engine, pool: this.pool, ledger: this.ledger, idle: this.idle, logger });
    this.loss = new NodeLoss({
      engine: this.engine,
      pool: this.pool,
      ledger: this.ledger,
      idle: this.idle,
      finder: this.finder,
      foundAt: this.arrival.foundAt,
      logger,
      isClosed: () => this.closed,
    });
    this.nodeOps = new NodeOperations({
      engine: this.engine,
      pool: this.pool,
      ledger: this.ledger,
      setups: this.setups,
      idle: this.idle,
      logger,
      lookFor: async (allocator) => {
        await this.lookFor(allocator);
        this.finder.pingNow();
      },
    });
    this.router = new ReplyRouter<Ref>({
      logger,
      jobFiles: this.jobFilesConfig(),
      job: (uid) => this.ledger.jobs.get(uid),
      replied: (job, link, outcome) => this.ledger.replied(job, link, outcome),
      provisional: (job, link, result) => this.ledger.eventsOf(job)?.jobProvisional(job, result, link.info),
      refused: (job, link, why) => this.ledger.end(job, 'cancelled', `node ${link.key} refused the job: ${why}`, link),
      requeue: (job, link) => {
        this.engine.jobDone(link.key, job.uid);
        this.ledger.requeue(job, link.info);
        this.idle.check(link.key);
      },
      running: (link, started) => {
        for (const { job } of started) this.engine.jobStarted(link.key, job.uid);
        const byComputation = new Map<string, Array<{ job: QueuedJob<Ref>; startTime: number }>>();
        for (const entry of started) getOrCreateList(byComputation, entry.job.computeId).push(entry);
        for (const [computeId, entries] of byComputation) this.ledger.computations.get(computeId)?.events.jobsRunning(entries, link.info);
      },
      availInfo: (link) => {
        for (const computeId of link.computeIds) this.ledger.computations.get(computeId)?.events.nodeAvailInfo(link.info);
      },
      nodeCpus: (link, cpus) => {
        link.nodeCpus = cpus;
        restoreCpus(this.engine, link);
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
        const job = this.ledger.jobs.get(Number(chunk.jobId));
        return job !== undefined && job.nodeKey === link.key && job.computeId === chunk.computeId;
      },
      relayJobFiles && ((link) => relayJobFiles(link, (uid) => this.ledger.jobs.get(uid))),
    );
  }

  /**
   * Starts looking for nodes for `spec`; rejects when discovery cannot start. A host name that does
   * not resolve is warned about and resolved again later, alone (the other nodes are used).
   */
  async addComputation(spec: ComputationSpec<Ref, Owner, Alloc>): Promise<void> {
    this.ledger.computations.set(spec.computeId, spec);
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
    this.ledger.jobs.set(job.uid, job);
    // Jobs wait: discovery warns when no node is found for them (see Discovery.setActive).
    if (this.options.activeWhileJobs && this.ledger.jobs.size === 1) this.setActive(true);
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
    const queued = this.ledger.jobs.get(job.uid);
    if (!queued) return 'unknown';
    if (this.engine.dequeue(queued.uid)) {
      this.ledger.forget(queued);
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
    const queued = this.ledger.jobs.get(job.uid);
    if (!queued) return false;
    this.engine.dequeue(queued.uid);
    this.ledger.forget(queued);
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
  allocate(computeId: string, allocator: Alloc): Promise<void> {
    return this.nodeOps.allocate(computeId, allocator);
  }

  /** Stops sending a computation's jobs to a node; its running jobs finish. */
  deallocate(computeId: string, nodeKey: string): boolean {
    return this.nodeOps.deallocate(computeId, nodeKey);
  }

  /**
   * Closes a computation on one node: no new jobs go there; its running jobs are terminated
   * (`terminatePending`) or finish first. The node is then released for this computation.
   * Resolves false when the node does not serve the computation.
   */
  closeNode(computeId: string, nodeKey: string, terminatePending: boolean): Promise<boolean> {
    return this.nodeOps.closeNode(computeId, nodeKey, terminatePending);
  }

  /**
   * Uses `cpus` CPUs of a node for a computation (at most what the node offers); resolves with
   * the CPUs now used, or -1 when the node does not serve the computation, refuses, does not
   * answer or goes away (logged).
   */
  setNodeCpus(computeId: string, nodeKey: string, cpus: number): Promise<number> {
    return this.nodeOps.setNodeCpus(computeId, nodeKey, cpus);
  }

  /** Copies a file to a node, into the computation's directory (cluster.sendFile); false when the node does not serve it. */
  sendFile(computeId: string, nodeKey: string, file: LocalFile): Promise<boolean> {
    return this.nodeOps.sendFile(computeId, nodeKey, file);
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
    const jobs = [...this.ledger.jobs.values()].filter((job) => job.computeId === computeId);
    for (const job of jobs) if (this.engine.dequeue(job.uid)) this.ledger.forget(job);
    await Promise.all(
      this.pool.serving(computeId).map((link) => this.nodeOps.release(link, computeId, true, 'the computation was closed')),
    );
    this.ledger.computations.delete(computeId);
    this.engine.forgetComputation(computeId);
    for (const job of jobs) {
      if (this.ledger.jobs.get(job.uid) !== job) continue;
      if (job.nodeKey !== undefined) this.engine.jobDone(job.nodeKey, job.uid);
      this.ledger.forget(job);
      if (job.nodeKey !== undefined) this.idle.check(job.nodeKey);
    }
  }

  /** Stops discovery and hangs up on every node. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.ledger.computations.keys()].map((id) => this.closeComputation(id)));
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

  private dispatch(key: string, job: QueuedJob<Ref>): void {
    const link = this.pool.get(key)!;
    job.nodeKey = key;
    job.attempt++;
    this.ledger.eventsOf(job)?.jobStarted(job, link.info);
    sendJob(link, job, {
      logger: this.options.logger,
      stillSent: (sent, to, attempt) => sent.attempt === attempt && sent.nodeKey === to.key && this.ledger.jobs.get(sent.uid) === sent,
      failed: (failed, at, status, why) => this.ledger.end(failed, status, why, at),
    });
  }
}
