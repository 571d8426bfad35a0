import { decodeValue } from '@dispy/protocol';
import { ThroughputHistory, type Logger, type MonitorJobCounts } from '@dispy/protocol/internal';
import type { ComputationEvents, JobEndStatus, JobOutcome, NodeInfo, SchedulerJob } from '@dispy/scheduler';
import { DispyJob } from '../job/dispy-job.js';
import { DispyNode } from '../node/dispy-node.js';

type Job = SchedulerJob<DispyJob>;

/** How long "no node can run it" waits for the other nodes found meanwhile to answer their setup. */
const NO_NODE_SETTLE_MS = 2_000;

export interface JobLedgerOptions {
  name: string;
  logger: Logger;
  callback?: (job: DispyJob) => void;
  clusterStatus?: (status: number, node: DispyNode | undefined, job: DispyJob | undefined) => void;
  /** Called with true while jobs are unfinished, false when all are done. */
  setActive: (active: boolean) => void;
}

/**
 * A cluster's jobs and nodes as its program sees them: it turns the scheduler's events into
 * DispyJob statuses and DispyNode counters, and calls `callback` and `clusterStatus` for each
 * change, in order, never concurrently; what a user callback throws is logged, not thrown.
 */
export class JobLedger implements ComputationEvents<DispyJob> {
  /** Jobs not done yet. */
  readonly jobs = new Map<DispyJob, Job>();
  readonly nodes = new Map<string, DispyNode>();
  private idleWaiters: Array<() => void> = [];
  /** Nodes that cannot run the computation, with why (`name (key): reason`), until one comes up. */
  private readonly failedNodes = new Map<string, string>();
  /** Whether "no node can run it" was said since a node last came up. */
  private toldNoNode = false;
  private noNodeTimer?: NodeJS.Timeout;
  /** Jobs out to a node: which node, and whether a worker there started it (else it waits there). */
  private readonly atNode = new Map<DispyJob, { node: DispyNode; running: boolean }>();
  /** Jobs submitted and ended, for the monitor. */
  private readonly counts = { submitted: 0, finished: 0, failed: 0, cancelled: 0 };
  /** Jobs ended per interval, for the monitor's throughput line. */
  readonly throughput = new ThroughputHistory();
  /** Internal listeners of every change (the monitor); the user's `clusterStatus` stays the user's. */
  private readonly watchers = new Set<() => void>();
  /** The encoded arguments of jobs not done, kept only while a watcher asks for them (`keepArgs`). */
  readonly jobArgs = new WeakMap<DispyJob, Uint8Array>();
  /** How many watchers want the jobs' arguments. */
  keepArgs = 0;

  constructor(private readonly options: JobLedgerOptions) {}

  /** A job was submitted. */
  track(job: Job, args?: Uint8Array): void {
    this.jobs.set(job.ref, job);
    this.counts.submitted++;
    if (args && this.keepArgs > 0) this.jobArgs.set(job.ref, args);
    this.options.setActive(true);
    this.notifyStatus(DispyJob.Created, undefined, job.ref);
    this.warnIfNoNodeCanRun();
  }

  /** Resolves true when every job is done, or false after `timeoutSeconds`. */
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

  /** The public DispyNode of a scheduler node, created on first sight and kept up to date. */
  nodeOf(info: NodeInfo): DispyNode {
    let node = this.nodes.get(info.key);
    if (!node) {
      node = new DispyNode(info.host, info.port, info.name);
      this.nodes.set(info.key, node);
    }
    node.cpus = info.cpus;
    node.availCpus = info.totalCpus;
    node.platform = info.platform;
    node.availInfo = info.availInfo;
    node.tx = info.tx;
    node.rx = info.rx;
    return node;
  }

  /** Ends a job with a final status; settles its wait(), calls callback and clusterStatus. */
  finish(queued: Job, status: number, result: unknown, exception?: string, node?: DispyNode): void {
    const job = queued.ref;
    if (!this.jobs.delete(job)) return;
    this.leaveNode(job);
    this.jobArgs.delete(job);
    if (status === DispyJob.Finished) this.counts.finished++;
    else if (status === DispyJob.Cancelled) this.counts.cancelled++;
    else this.counts.failed++;
    this.throughput.record();
    job.status = status;
    job.result = result;
    job.exception = exception || undefined;
    job.endTime ??= Date.now();
    job.settle();
    this.callUser('callback', () => this.options.callback?.(job));
    this.notifyStatus(status, node, job);
    if (this.jobs.size === 0) {
      this.options.setActive(false);
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const waiter of waiters) waiter();
    }
  }

  nodeUp(info: NodeInfo): void {
    this.failedNodes.delete(info.key);
    this.toldNoNode = false;
    const node = this.nodeOf(info);
    node.updateTime = Date.now();
    this.notifyStatus(DispyNode.Initialized, node, undefined);
  }

  nodeDown(info: NodeInfo, lost: Job[], why: string): void {
    const node = this.nodeOf(info);
    this.nodes.delete(info.key);
    for (const job of lost) this.finish(job, DispyJob.Cancelled, undefined, why, node);
    node.busy = 0;
    node.queued = 0;
    for (const [job, at] of this.atNode) if (at.node === node) this.atNode.delete(job);
    this.notifyStatus(DispyNode.Closed, node, undefined);
  }

  nodeFailed(info: NodeInfo, error: string): void {
    this.options.logger.error(`node ${info.name} (${info.key}) cannot run ${this.options.name}: ${error}`);
    const node = new DispyNode(info.host, info.port, info.name);
    node.setupError = error;
    this.notifyStatus(DispyNode.Closed, node, undefined);
    this.failedNodes.set(info.key, `${info.name} (${info.key}): ${error}`);
    this.warnIfNoNodeCanRun();
  }

  /**
   * Says once, while jobs wait, that every node known has refused the computation or failed its
   * setup, naming each and why: `wait()` without a timeout would otherwise wait in silence.
   */
  private warnIfNoNodeCanRun(): void {
    const noNode = () => !this.toldNoNode && this.nodes.size === 0 && this.failedNodes.size > 0 && this.jobs.size > 0;
    if (!noNode() || this.noNodeTimer) return;
    // Other nodes found in the same round are still being set up: name them all, in a moment.
    this.noNodeTimer = setTimeout(() => {
      this.noNodeTimer = undefined;
      if (noNode()) this.tellNoNode();
    }, NO_NODE_SETTLE_MS);
    this.noNodeTimer.unref();
  }

  private tellNoNode(): void {
    this.toldNoNode = true;
    const jobs = this.jobs.size;
    this.options.logger.warn(
      `no node can run ${this.options.name}, and ${jobs} job${jobs === 1 ? '' : 's'} wait: ` +
        `${[...this.failedNodes.values()].join('; ')}. ` +
        'The jobs wait for a node that can: fix what the nodes said (then allocateNode), or start another node',
    );
  }

  nodeAvailInfo(info: NodeInfo): void {
    const node = this.nodeOf(info);
    node.updateTime = Date.now();
    this.notifyStatus(DispyNode.AvailInfo, node, undefined);
  }

  /** The job went to a node, where it waits for a worker: counted in `queued` there, still `Created`. */
  jobStarted(queued: Job, info: NodeInfo): void {
    const node = this.nodeOf(info);
    const job = queued.ref;
    this.leaveNode(job);
    job.ipAddr = info.host;
    node.queued++;
    this.atNode.set(job, { node, running: false });
    this.changed();
  }

  /** Workers of the node started these jobs: each is `Running` from its start time on the node. */
  jobsRunning(started: ReadonlyArray<{ job: Job; startTime: number }>, info: NodeInfo): void {
    const node = this.nodeOf(info);
    for (const { job, startTime } of started) this.markRunning(job.ref, node, startTime);
  }

  /** Whether a worker of its node has started the job (it is not waiting there, nor queued here). */
  isRunning(job: DispyJob): boolean {
    return this.atNode.get(job)?.running === true;
  }

  /** Moves a job waiting at `node` to its running ones, and says so (once). */
  private markRunning(job: DispyJob, node: DispyNode, startTime: number): void {
    const at = this.atNode.get(job);
    if (!at || at.node !== node || at.running) return;
    at.running = true;
    node.queued = Math.max(0, node.queued - 1);
    node.busy++;
    job.status = DispyJob.Running;
    job.startTime = startTime > 0 ? startTime : Date.now();
    this.notifyStatus(DispyJob.Running, node, job);
  }

  /** The job is no longer at its node: out of the node's count (running or queued). */
  private leaveNode(job: DispyJob): void {
    const at = this.atNode.get(job);
    if (!at) return;
    this.atNode.delete(job);
    if (at.running) at.node.busy = Math.max(0, at.node.busy - 1);
    else at.node.queued = Math.max(0, at.node.queued - 1);
  }

  jobRequeued(queued: Job, from: NodeInfo): void {
    const node = this.nodes.get(from.key);
    this.leaveNode(queued.ref);
    queued.ref.status = DispyJob.Created;
    // The node the job left: clusterStatus says where it was before it waits again.
    this.notifyStatus(DispyJob.Created, node, queued.ref);
  }

  jobFailed(queued: Job, status: Exclude<JobEndStatus, 'finished'>, why: string, info?: NodeInfo): void {
    const node = info ? this.nodeOf(info) : undefined;
    this.leaveNode(queued.ref);
    this.finish(queued, status === 'cancelled' ? DispyJob.Cancelled : DispyJob.Terminated, undefined, why, node);
  }

  /** An intermediate result: the job goes on. */
  jobProvisional(queued: Job, encoded: Uint8Array, info: NodeInfo): void {
    const job = queued.ref;
    let result: unknown;
    try {
      result = decodeValue(encoded);
    } catch (error) {
      this.options.logger.warn(`a provisional result of job ${String(job.id)} could not be decoded: ${(error as Error).message}`);
      return;
    }
    this.markRunning(job, this.nodeOf(info), 0);
    job.status = DispyJob.ProvisionalResult;
    job.result = result;
    this.callUser('callback', () => this.options.callback?.(job));
    this.notifyStatus(DispyJob.ProvisionalResult, this.nodeOf(info), job);
  }

  jobDone(queued: Job, outcome: JobOutcome, info: NodeInfo): void {
    const node = this.nodeOf(info);
    // A job that ended before its start was reported is said Running first, as every job is.
    this.markRunning(queued.ref, node, outcome.startTime);
    this.leaveNode(queued.ref);
    node.jobsDone++;
    node.cpuTime += outcome.cpuTime;
    // Start and end are both the node's clock: their difference holds whatever the clocks' offset.
    if (outcome.startTime > 0 && outcome.endTime >= outcome.startTime) node.jobTime += (outcome.endTime - outcome.startTime) / 1000;
    node.updateTime = Date.now();
    const job = queued.ref;
    job.stdout = outcome.stdout;
    job.stderr = outcome.stderr;
    job.startTime = outcome.startTime || job.startTime;
    job.endTime = outcome.endTime || Date.now();
    if (outcome.status === 'finished') {
      let result: unknown;
      try {
        result = decodeValue(outcome.result);
      } catch (error) {
        this.finish(queued, DispyJob.Terminated, undefined, `the result could not be decoded: ${(error as Error).message}`, node);
        return;
      }
      this.finish(queued, DispyJob.Finished, result, undefined, node);
    } else {
      this.finish(queued, outcome.status === 'cancelled' ? DispyJob.Cancelled : DispyJob.Terminated, undefined, outcome.exception, node);
    }
  }

  /** The jobs in each state, for the monitor. */
  jobCounts(): MonitorJobCounts {
    let running = 0;
    for (const at of this.atNode.values()) if (at.running) running++;
    return { ...this.counts, running, queued: this.jobs.size - running };
  }

  /** Calls `listener` after every change, until the returned function is called. */
  watch(listener: () => void): () => void {
    const entry = () => listener();
    this.watchers.add(entry);
    return () => this.watchers.delete(entry);
  }

  private changed(): void {
    for (const watcher of this.watchers) this.callUser('a monitor', watcher);
  }

  private notifyStatus(status: number, node: DispyNode | undefined, job: DispyJob | undefined): void {
    this.changed();
    const { clusterStatus } = this.options;
    if (clusterStatus) this.callUser('clusterStatus', () => clusterStatus(status, node, job));
  }

  /** Runs a user callback; what it throws is logged, never thrown into the cluster. */
  private callUser(what: string, call: () => void): void {
    try {
      call();
    } catch (error) {
      this.options.logger.error(`${what} threw: ${(error as Error).stack ?? String(error)}`);
    }
  }
}
