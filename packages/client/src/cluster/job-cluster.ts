import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import os from 'node:os';
import {
  ComputationError,
  DispyError,
  OptionError,
  analyzeFunction,
  createLogger,
  decodeValue,
  dispy,
  encodeArguments,
  formatZodError,
  type Frame,
  type Logger,
} from '@dispy/protocol';
import { SchedulingEngine } from '@dispy/scheduler';
import { DispyJob } from '../job/dispy-job.js';
import { DispyNode, type DispyNodeAvailInfo } from '../node/dispy-node.js';
import { NodeAllocate } from '../node/node-allocate.js';
import { NodeFinder } from '../discovery/node-finder.js';
import { clusterOptionsSchema, type JobClusterOptions, type ResolvedClusterOptions } from './options.js';
import { clusterStats, formatStats, type ClusterStats } from './stats.js';
import { NodeLink } from './node-link.js';
import type { ClusterJob } from './cluster-job.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFunction = (...args: any[]) => any;

/** What `submitJob` takes. */
export interface SubmitJobOptions<A extends unknown[]> {
  args: A;
  /** Only this node may run the job (a DispyNode, an IP address or a host name). */
  node?: DispyNode | string;
  /** Higher runs first; FIFO within a priority. Default 0. */
  priority?: number;
  depends?: unknown[];
  timeout?: number;
}

/** Options that belong to later releases; refused clearly rather than ignored. */
const NOT_YET: Array<[keyof ResolvedClusterOptions, (value: unknown) => boolean]> = [
  ['depends', (value) => Array.isArray(value) && value.length > 0],
  ['setup', (value) => value !== undefined],
  ['cleanup', (value) => typeof value === 'function'],
  ['keyfile', (value) => value !== undefined],
  ['certfile', (value) => value !== undefined],
  ['cafile', (value) => value !== undefined],
  ['jobTimeout', (value) => value !== undefined],
];

/**
 * A cluster for one computation, scheduled from this process: it finds nodes, ships the
 * computation to them once, and runs every submitted job on the least loaded node with a free
 * CPU. Create it, `submit` jobs, `await job.wait()`, then `await cluster.close()`.
 *
 * @throws OptionError for a wrong option (naming it), ComputationError when the computation
 *   cannot be shipped (naming the cause), both before anything is sent.
 */
export class JobCluster<F extends AnyFunction = AnyFunction> {
  /** The computation's name. */
  readonly name: string;
  readonly options: ResolvedClusterOptions;
  private readonly logger: Logger;
  private readonly computeId = randomBytes(8).toString('hex');
  private readonly source: string;
  private readonly allocations: NodeAllocate[];
  private readonly engine: SchedulingEngine<ClusterJob>;
  private readonly jobs = new Map<number, ClusterJob>();
  private readonly entries = new WeakMap<DispyJob, ClusterJob>();
  private readonly links = new Map<string, NodeLink>();
  private readonly connecting = new Set<string>();
  private readonly finder: NodeFinder;
  private readonly started: Promise<void>;
  private readonly createdAt = Date.now();
  private idleWaiters: Array<() => void> = [];
  private nextUid = 1;
  private closing?: Promise<void>;
  private startError?: Error;

  constructor(computation: F | string, options: JobClusterOptions<Awaited<ReturnType<F>>> = {}) {
    const parsed = clusterOptionsSchema.safeParse(options);
    if (!parsed.success) {
      throw new OptionError(formatZodError(parsed.error, 'JobCluster', Object.keys(clusterOptionsSchema.shape), options));
    }
    this.options = parsed.data;
    for (const [option, isSet] of NOT_YET) {
      if (isSet(this.options[option])) {
        throw new OptionError(`JobCluster: option "${option}" is not available in this release of @dispy/client yet`);
      }
    }
    if (typeof computation === 'string') {
      throw new ComputationError('program computations (a path) are not available in this release of @dispy/client yet; pass a function');
    }
    const shipped = analyzeFunction(computation);
    this.name = shipped.name;
    this.source = shipped.shippedSource;
    this.logger = createLogger(`dispy ${this.name}`, this.options.loglevel);
    this.allocations = this.options.nodes.map((node) => (typeof node === 'string' ? new NodeAllocate(node) : node));
    this.engine = new SchedulingEngine<ClusterJob>({ dispatch: (key, job) => this.dispatch(key, job) });
    const ipAddr = [this.options.ipAddr ?? []].flat()[0];
    this.finder = new NodeFinder({
      secret: this.options.secret,
      bindHost: ipAddr,
      bindPort: this.options.port,
      portIsDefault: options.port === undefined,
      nodePort: this.options.nodePort,
      clientName: os.hostname(),
      logger: this.logger,
      pingInterval: this.options.pingInterval,
      onReply: (reply, address) => void this.onDiscovered(reply, address),
    });
    this.started = this.start().catch((error: Error) => this.failStart(error));
  }

  /** Schedules `computation(...args)` on any node; returns the job at once. */
  submit(...args: Parameters<F>): DispyJob<Awaited<ReturnType<F>>> {
    return this.submitJob({ args });
  }

  /** Schedules `computation(...args)` on that node only (a DispyNode, IP address or host name). */
  submitNode(node: DispyNode | string, ...args: Parameters<F>): DispyJob<Awaited<ReturnType<F>>> {
    return this.submitJob({ args, node });
  }

  /**
   * Schedules a job with per-job options.
   * @throws UnsendableValueError naming the argument that cannot be sent; DispyError after close.
   */
  submitJob(options: SubmitJobOptions<Parameters<F>>): DispyJob<Awaited<ReturnType<F>>> {
    if (this.closing) throw new DispyError('DISPY_ERR_CLOSED', `JobCluster ${this.name} is closed; create a new one to submit jobs`);
    if (this.startError) throw this.startError;
    if (!Array.isArray(options.args)) throw new OptionError(`submitJob: args must be an array, got ${typeof options.args}`);
    if (options.depends !== undefined || options.timeout !== undefined) {
      throw new OptionError('submitJob: per-job depends and timeout are not available in this release of @dispy/client yet');
    }
    const priority = options.priority ?? 0;
    if (!Number.isFinite(priority)) throw new OptionError(`submitJob: priority must be a finite number, got ${String(priority)}`);
    const args = encodeArguments(options.args);
    const job = new DispyJob<Awaited<ReturnType<F>>>();
    const uid = this.nextUid++;
    const entry: ClusterJob = { uid, computeId: this.computeId, priority, job: job as DispyJob, args };
    this.jobs.set(uid, entry);
    this.entries.set(entry.job, entry);
    this.updateActive();
    this.notifyStatus(DispyJob.Created, undefined, job as DispyJob);
    const node = options.node;
    if (node === undefined) {
      this.engine.submit(entry);
    } else {
      const host = this.hostOf(node);
      if (host !== undefined) {
        entry.pinnedHost = host;
        this.engine.submit(entry);
      } else {
        void this.submitToHostName(entry, node as string);
      }
    }
    return job;
  }

  /**
   * Cancels a job: a queued one is removed, a running one is killed on its node (its worker is
   * replaced). The job ends Cancelled. Resolves 0, or -1 when the job is already done.
   */
  async cancel(job: DispyJob): Promise<number> {
    const entry = this.entries.get(job);
    if (!entry || !this.jobs.has(entry.uid)) return -1;
    if (this.engine.dequeue(entry.uid) || entry.nodeKey === undefined) {
      this.finish(entry, DispyJob.Cancelled, undefined, 'cancelled before it ran');
      return 0;
    }
    const link = this.links.get(entry.nodeKey);
    if (!link) return -1;
    link.connection.send({ cancel: { computeId: this.computeId, jobId: entry.uid } });
    return 0;
  }

  /**
   * Resolves true when every submitted job is done, or false after `timeoutSeconds`.
   */
  wait(timeoutSeconds?: number): Promise<boolean> {
    if (this.jobs.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(done);
      if (timeoutSeconds !== undefined) {
        timer = setTimeout(() => {
          this.idleWaiters = this.idleWaiters.filter((waiter) => waiter !== done);
          resolve(false);
        }, timeoutSeconds * 1000);
      }
    });
  }

  /** The nodes serving the cluster and how many jobs are not done yet. */
  status(): { nodes: DispyNode[]; jobsPending: number } {
    return { nodes: [...this.links.values()].map((link) => link.node), jobsPending: this.jobs.size };
  }

  /** Prints the per-node table (CPUs, jobs done, CPU time, traffic) and returns it. */
  stats(): ClusterStats {
    for (const link of this.links.values()) link.countTraffic();
    const stats = clusterStats(this.status().nodes, this.createdAt);
    process.stdout.write(formatStats(stats));
    return stats;
  }

  /**
   * Waits for every job, then releases the nodes (which remove the computation's files unless
   * `cleanup: false`) and stops discovery. Safe to call more than once. With `timeout`
   * (seconds), jobs still unfinished then are cancelled (queued) or terminated on their nodes.
   */
  close(options: { timeout?: number } = {}): Promise<void> {
    this.closing ??= (async () => {
      await this.started;
      if (!(await this.wait(options.timeout))) {
        for (const entry of [...this.jobs.values()]) {
          this.engine.dequeue(entry.uid);
          this.finish(entry, DispyJob.Cancelled, undefined, `the cluster was closed after ${options.timeout} s before the job finished`);
        }
      }
      this.finder.close();
      await Promise.all(
        [...this.links.values()].map(async (link) => {
          // Idle connections are unref'd; keep this one alive until the node has answered.
          link.connection.setActive(true);
          await link.connection.closeComputation(this.computeId, true);
          this.links.delete(link.key);
          link.connection.destroy();
          this.notifyStatus(DispyNode.Closed, link.node, undefined);
        }),
      );
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private async start(): Promise<void> {
    for (const allocation of this.allocations) {
      if (allocation.isWildcard) {
        this.finder.enableBroadcast();
      } else if (net.isIP(allocation.host)) {
        this.finder.addHost(allocation.host, allocation.port);
      } else {
        const addresses = await lookup(allocation.host, { all: true });
        for (const { address } of addresses) {
          allocation.resolved.add(address);
          this.finder.addHost(address, allocation.port);
        }
      }
    }
    await this.finder.start();
    this.finder.pingNow();
  }

  private failStart(error: Error): void {
    this.startError = new DispyError('DISPY_ERR_START', `JobCluster ${this.name} could not start: ${error.message}`, { cause: error });
    this.logger.error(this.startError.message);
    for (const entry of [...this.jobs.values()]) {
      this.engine.dequeue(entry.uid);
      this.finish(entry, DispyJob.Cancelled, undefined, this.startError.message);
    }
  }

  private async onDiscovered(reply: dispy.DiscoveryReply, address: string): Promise<void> {
    const key = `${reply.tcpHost}:${reply.tcpPort}`;
    if (this.closing || this.links.has(key) || this.connecting.has(key)) return;
    if (reply.busy || reply.cpus === 0) {
      this.logger.debug(`node ${reply.name} (${key}) is busy; will ask again`);
      return;
    }
    const cpus = this.allocate(reply);
    if (cpus <= 0) return;
    this.connecting.add(key);
    const link = new NodeLink({
      host: reply.tcpHost,
      port: reply.tcpPort,
      name: reply.name,
      pingedAt: address,
      localAddress: [this.options.ipAddr ?? []].flat()[0],
      secret: this.options.secret,
      clientName: os.hostname(),
      onFrame: (from, frame) => this.onFrame(from, frame),
      onClose: (from, error) => this.onNodeClosed(from, error),
    });
    try {
      await link.connection.open();
      const answer = await link.connection.setup({
        computeId: this.computeId,
        name: this.name,
        kind: dispy.ComputationKind.FUNCTION,
        source: this.source,
        cpus,
        destPath: this.options.destPath ?? '',
        cleanup: this.options.cleanup !== false,
      });
      if (!answer.ok) throw new Error(`setup failed: ${answer.error}`);
      if (this.closing) {
        link.connection.destroy();
        return;
      }
      const { node } = link;
      node.cpus = answer.cpus;
      node.availCpus = reply.totalCpus || reply.cpus;
      node.platform = reply.platform;
      node.availInfo = toAvailInfo(reply.availInfo);
      this.links.set(key, link);
      this.finder.found(address, true);
      link.connection.setActive(this.jobs.size > 0);
      this.logger.info(`node ${node.name} (${key}) serves ${node.cpus} CPUs`);
      this.notifyStatus(DispyNode.Initialized, node, undefined);
      this.engine.addNode(key, node.ipAddr, node.cpus, this.computeId);
    } catch (error) {
      const level = DispyError.isInstance(error) ? 'error' : 'warn';
      this.logger[level](`node ${reply.name} (${key}): ${(error as Error).message}`);
      link.connection.destroy();
    } finally {
      this.connecting.delete(key);
    }
  }

  private allocate(reply: dispy.DiscoveryReply): number {
    const availInfo = toAvailInfo(reply.availInfo);
    for (const allocation of this.allocations) {
      try {
        const cpus = allocation.allocate(this, reply.tcpHost, reply.name, reply.cpus, availInfo, reply.platform);
        if (cpus > 0) return Math.min(Math.floor(cpus), reply.cpus);
      } catch (error) {
        this.logger.error(`NodeAllocate(${allocation.host}).allocate threw: ${(error as Error).message}`);
      }
    }
    return 0;
  }

  private dispatch(key: string, entry: ClusterJob): void {
    const link = this.links.get(key)!;
    const { job } = entry;
    entry.nodeKey = key;
    job.status = DispyJob.Running;
    job.ipAddr = link.node.ipAddr;
    job.startTime = Date.now();
    link.node.busy++;
    link.connection.send({ job: { computeId: this.computeId, jobId: entry.uid, args: entry.args } });
    if (!this.options.reentrant) entry.args = undefined;
    this.notifyStatus(DispyJob.Running, link.node, job);
  }

  private onFrame(link: NodeLink, frame: Frame): void {
    if (frame.kind === 'jobReply') {
      this.onJobReply(link, frame.jobReply as dispy.JobReply);
    } else if (frame.kind === 'error') {
      const { message, jobId } = frame.error!;
      const entry = jobId ? this.jobs.get(Number(jobId)) : undefined;
      this.logger.warn(`node ${link.node.name} (${link.key}): ${message}`);
      if (entry) {
        this.engine.jobDone(link.key, entry.uid);
        link.node.busy--;
        this.finish(entry, DispyJob.Cancelled, undefined, `node ${link.key} refused the job: ${message}`);
      }
    }
  }

  private onJobReply(link: NodeLink, reply: dispy.JobReply): void {
    const uid = Number(reply.jobId);
    link.connection.ack(uid);
    const entry = this.jobs.get(uid);
    if (!entry || entry.nodeKey !== link.key) return;
    this.engine.jobDone(link.key, uid, reply.endTime - reply.startTime);
    const { node } = link;
    node.busy--;
    node.jobsDone++;
    node.cpuTime += reply.cpuTime;
    node.updateTime = Date.now();
    const { job } = entry;
    job.stdout = reply.stdout;
    job.stderr = reply.stderr;
    job.startTime = reply.startTime || job.startTime;
    job.endTime = reply.endTime || Date.now();
    if (reply.status === dispy.JobStatus.FINISHED) {
      try {
        this.finish(entry, DispyJob.Finished, decodeValue(reply.result));
      } catch (error) {
        this.finish(entry, DispyJob.Terminated, undefined, `the result could not be decoded: ${(error as Error).message}`);
      }
    } else {
      this.finish(entry, reply.status === dispy.JobStatus.CANCELLED ? DispyJob.Cancelled : DispyJob.Terminated, undefined, reply.exception);
    }
  }

  private onNodeClosed(link: NodeLink, error?: Error): void {
    if (this.links.get(link.key) !== link) return;
    this.links.delete(link.key);
    const why = `node ${link.node.name} (${link.key}) went away${error ? `: ${error.message}` : ''}`;
    if (!this.closing) this.logger.warn(why);
    for (const entry of this.engine.removeNode(link.key)) {
      if (this.options.reentrant && entry.args && entry.pinnedHost === undefined) {
        entry.nodeKey = undefined;
        entry.job.status = DispyJob.Created;
        this.engine.submit(entry);
      } else {
        this.finish(entry, DispyJob.Cancelled, undefined, why);
      }
    }
    link.node.busy = 0;
    this.notifyStatus(DispyNode.Closed, link.node, undefined);
    if (!this.closing) {
      this.finder.found(link.pingedAt, false);
      this.finder.pingNow();
    }
  }

  private finish(entry: ClusterJob, status: number, result: unknown, exception?: string): void {
    const { job } = entry;
    job.status = status;
    job.result = result;
    job.exception = exception || undefined;
    job.endTime ??= Date.now();
    entry.args = undefined;
    this.jobs.delete(entry.uid);
    job.settle();
    this.callUser('callback', () => this.options.callback?.(job));
    this.notifyStatus(status, entry.nodeKey ? this.links.get(entry.nodeKey)?.node : undefined, job);
    if (this.jobs.size === 0) {
      this.updateActive();
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const waiter of waiters) waiter();
    }
  }

  private notifyStatus(status: number, node: DispyNode | undefined, job: DispyJob | undefined): void {
    if (this.options.clusterStatus) this.callUser('clusterStatus', () => this.options.clusterStatus!(status, node, job));
  }

  /** Runs a user callback; what it throws is logged, never thrown into the cluster. */
  private callUser(what: string, call: () => void): void {
    try {
      call();
    } catch (error) {
      this.logger.error(`${what} threw: ${(error as Error).stack ?? String(error)}`);
    }
  }

  /** Keeps the process alive while jobs are unfinished; lets it exit when idle. */
  private updateActive(): void {
    const active = this.jobs.size > 0 && !this.startError;
    this.finder.setActive(active);
    for (const link of this.links.values()) link.connection.setActive(active);
  }

  /** The IP a pinned job waits for, when it is known without a DNS lookup. */
  private hostOf(node: DispyNode | string): string | undefined {
    if (node instanceof DispyNode) return node.ipAddr;
    if (typeof node !== 'string' || node.length === 0) {
      throw new OptionError(`submitNode: node must be a DispyNode, an IP address or a host name, got ${String(node)}`);
    }
    if (net.isIP(node)) return node;
    for (const link of this.links.values()) if (link.node.name === node) return link.node.ipAddr;
    return undefined;
  }

  private async submitToHostName(entry: ClusterJob, name: string): Promise<void> {
    try {
      const { address } = await lookup(name);
      entry.pinnedHost = address;
      if (this.jobs.has(entry.uid)) this.engine.submit(entry);
    } catch (error) {
      this.finish(entry, DispyJob.Cancelled, undefined, `node ${name} could not be resolved: ${(error as Error).message}`);
    }
  }
}

function toAvailInfo(info: dispy.IAvailInfo | null | undefined): DispyNodeAvailInfo | undefined {
  if (!info) return undefined;
  return { cpu: info.cpu ?? 0, memory: info.memory ?? 0, disk: info.disk ?? 0, swap: info.swap ?? 0 };
}
