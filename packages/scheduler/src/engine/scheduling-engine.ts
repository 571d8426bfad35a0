import { JobQueue, type Queueable } from './job-queue.js';

/** A job as the engine sees it: which computation, how urgent, and optionally which node. */
export interface EngineJob extends Queueable {
  readonly computeId: string;
  /** The only node that may run it: its IP address (any port), or its key `host:port`. */
  readonly pinnedHost?: string;
}

/** A node's CPUs as the engine accounts them. */
export interface EngineNodeState<J> {
  readonly key: string;
  readonly host: string;
  cpus: number;
  /** Jobs out to the node: running there, or waiting there for a worker (sent ahead). */
  readonly running: Map<number, J>;
  /** Those of `running` the node said it started (or would not give back): they stay there. */
  readonly started: Set<number>;
  /** Those of `running` asked back (`reclaim`) and not yet answered. */
  readonly reclaiming: Set<number>;
  readonly computeIds: Set<string>;
  /** Running average of how long its jobs take (ms); undefined until one is done. */
  averageJobMs?: number;
  /**
   * The CPUs this client may fill now, when fewer than `cpus` (a node shared with other clients'
   * computations): the node ranks as that much more loaded, so jobs go first to nodes others
   * are not using. Its room (`cpus` × depth) stays.
   */
  share?: number;
}

export interface EngineHooks<J> {
  /** Hand `job` to the transport of node `nodeKey`; its CPU is already counted as busy. */
  dispatch(nodeKey: string, job: J): void;
  /**
   * Ask node `nodeKey` to give back `jobs`, which it has not started (as far as the engine
   * knows), for nodes with idle CPUs; answer with `reclaimed`. Without this hook jobs never move.
   */
  reclaim?(nodeKey: string, jobs: J[]): void;
  /** Whether a job sent to a node may be taken back from it (default: any job not pinned). */
  movable?(job: J): boolean;
}

export interface EngineOptions {
  /**
   * Jobs a node may hold per CPU: one running, the rest waiting on the node so that a worker
   * starts its next job without a round trip to the scheduler. Default: adaptive (see
   * `pipelineDepth`). Nodes take more than one job per CPU only when every node has all its
   * CPUs busy.
   */
  jobsPerCpu?: number;
}

/**
 * How many jobs per CPU a node may hold, given how long its jobs take (ms, running average).
 * Short jobs are pipelined deeply, since a round trip would cost more than the job; a long job
 * never waits on a node behind another (it could start sooner on a node that frees up). Until a
 * node has finished a job, it gets one per CPU.
 */
export function pipelineDepth(averageJobMs: number | undefined): number {
  if (averageJobMs === undefined) return 1;
  if (averageJobMs < 5) return 8;
  if (averageJobMs < 50) return 4;
  if (averageJobMs < 500) return 2;
  return 1;
}

/**
 * The scheduling engine: the table of nodes and their CPUs, the queues of waiting jobs, and load
 * balancing. It knows nothing of sockets: `JobCluster` runs it in the client process, and the
 * shared scheduler hosts the same engine for many clients. Scheduling is dispy's: a job goes to
 * the least loaded node (jobs there ÷ CPUs) that has room and has its computation; jobs pinned
 * to a node wait for that node. Dispatch passes are coalesced into one microtask, so submitting
 * thousands of jobs in a loop costs O(log n) each.
 */
export class SchedulingEngine<J extends EngineJob> {
  private readonly nodes = new Map<string, EngineNodeState<J>>();
  private readonly queues = new Map<string, JobQueue<J>>();
  private readonly pinned = new Map<string, JobQueue<J>>();
  /** uid -> where a waiting job is queued. */
  private readonly waiting = new Map<number, JobQueue<J>>();
  /** Jobs waiting on something before they may be queued (a host name to resolve, files to hash). */
  private readonly held = new Map<number, J>();
  private passScheduled = false;
  /**
   * When each computation last had a job dispatched (a count of dispatches): among computations
   * whose most urgent jobs are equally urgent, the one served least recently goes first, so that
   * computations sharing nodes (dispyscheduler) take turns and a long queue starves no other.
   */
  private readonly lastServed = new Map<string, number>();
  private dispatches = 0;

  private readonly fixedDepth?: number;

  constructor(
    private readonly hooks: EngineHooks<J>,
    options: EngineOptions = {},
  ) {
    if (options.jobsPerCpu !== undefined) this.fixedDepth = Math.max(1, Math.floor(options.jobsPerCpu));
  }

  /** Jobs not dispatched yet: queued for a CPU, or held. */
  get pendingCount(): number {
    return this.waiting.size + this.held.size;
  }

  /** Adds a node, or updates its CPUs and computations; triggers a dispatch pass. */
  addNode(key: string, host: string, cpus: number, computeId: string): void {
    let node = this.nodes.get(key);
    if (!node) {
      node = { key, host, cpus, running: new Map(), started: new Set(), reclaiming: new Set(), computeIds: new Set() };
      this.nodes.set(key, node);
    }
    node.cpus = cpus;
    node.computeIds.add(computeId);
    this.schedulePass();
  }

  /** Changes how many CPUs of a node are used; running jobs above the new count finish. */
  setNodeCpus(key: string, cpus: number): void {
    const node = this.nodes.get(key);
    if (!node) return;
    node.cpus = cpus;
    this.schedulePass();
  }

  /** The CPUs of a node this client may fill now (see `EngineNodeState.share`); Infinity or undefined: all. */
  setNodeShare(key: string, share: number | undefined): void {
    const node = this.nodes.get(key);
    if (!node) return;
    node.share = share !== undefined && Number.isFinite(share) && share > 0 ? share : undefined;
    this.schedulePass();
  }

  /** Stops sending jobs of `computeId` to a node (its running jobs go on). */
  removeComputation(key: string, computeId: string): void {
    this.nodes.get(key)?.computeIds.delete(computeId);
  }

  /** A computation is over: what the engine kept of it goes (its queue, once empty, and its turn). */
  forgetComputation(computeId: string): void {
    this.lastServed.delete(computeId);
    if (this.queues.get(computeId)?.peek() === undefined) this.queues.delete(computeId);
  }

  /** Removes a node and returns the jobs that were running there, for the caller to settle. */
  removeNode(key: string): J[] {
    const node = this.nodes.get(key);
    if (!node) return [];
    this.nodes.delete(key);
    return [...node.running.values()];
  }

  /**
   * Holds a job: it is pending, but no node may take it until `release`. For a job that waits on
   * something before it may run (its pinned host name to resolve, its files to hash); `dequeue`
   * forgets it as it does a queued job.
   */
  hold(job: J): void {
    this.held.set(job.uid, job);
  }

  /**
   * Queues a held job (with its `pinnedHost` as it is now); false when it is not held (it was
   * dequeued meanwhile).
   */
  release(uid: number): boolean {
    const job = this.held.get(uid);
    if (!job) return false;
    this.held.delete(uid);
    this.submit(job);
    return true;
  }

  /** Whether a job is held (see `hold`). */
  isHeld(uid: number): boolean {
    return this.held.has(uid);
  }

  /** Queues a job; it is dispatched in the next pass. */
  submit(job: J): void {
    const queue = job.pinnedHost !== undefined ? getOrCreate(this.pinned, job.pinnedHost) : getOrCreate(this.queues, job.computeId);
    queue.push(job);
    this.waiting.set(job.uid, queue);
    this.schedulePass();
  }

  /** Takes a waiting (queued or held) job out; false when it is not waiting (running or done). */
  dequeue(uid: number): boolean {
    if (this.held.delete(uid)) return true;
    const queue = this.waiting.get(uid);
    if (!queue) return false;
    queue.remove(uid);
    this.waiting.delete(uid);
    return true;
  }

  /**
   * A job's node reported it done (or lost it): frees its slot and dispatches more. `runMs`,
   * how long it ran, tunes how deeply the node is pipelined.
   */
  jobDone(nodeKey: string, uid: number, runMs?: number): J | undefined {
    const node = this.nodes.get(nodeKey);
    const job = node?.running.get(uid);
    if (!node || !job) return undefined;
    node.running.delete(uid);
    node.started.delete(uid);
    node.reclaiming.delete(uid);
    if (runMs !== undefined && runMs >= 0) {
      node.averageJobMs = node.averageJobMs === undefined ? runMs : 0.9 * node.averageJobMs + 0.1 * runMs;
    }
    this.schedulePass();
    return job;
  }

  /** Jobs out to a node now: running there, or waiting there for a worker. */
  runningOn(nodeKey: string): J[] {
    return [...(this.nodes.get(nodeKey)?.running.values() ?? [])];
  }

  /** A job's node reported that a worker started it: it stays there. */
  jobStarted(nodeKey: string, uid: number): void {
    const node = this.nodes.get(nodeKey);
    if (node?.running.has(uid)) node.started.add(uid);
  }

  /**
   * The node answered a `reclaim` of `asked`: `dropped` will never run there and are returned,
   * out of the node's count, for the caller to queue again; the others stay (they started).
   */
  reclaimed(nodeKey: string, asked: readonly number[], dropped: readonly number[]): J[] {
    const node = this.nodes.get(nodeKey);
    if (!node) return [];
    const gone = new Set(dropped);
    const back: J[] = [];
    for (const uid of asked) {
      if (!node.reclaiming.delete(uid)) continue;
      const job = node.running.get(uid);
      if (!job) continue;
      if (gone.has(uid)) {
        node.running.delete(uid);
        back.push(job);
      } else {
        node.started.add(uid);
      }
    }
    this.schedulePass();
    return back;
  }

  private schedulePass(): void {
    if (this.passScheduled) return;
    this.passScheduled = true;
    queueMicrotask(() => {
      this.passScheduled = false;
      this.dispatchPass();
    });
  }

  private dispatchPass(): void {
    for (; this.waiting.size > 0;) {
      let best: EngineNodeState<J> | undefined;
      let bestLoad = Infinity;
      let bestQueue: JobQueue<J> | undefined;
      for (const node of this.nodes.values()) {
        if (node.running.size >= node.cpus * (this.fixedDepth ?? pipelineDepth(node.averageJobMs))) continue;
        const load = node.running.size / Math.min(node.cpus, node.share ?? node.cpus);
        if (load >= bestLoad) continue;
        const queue = this.queueFor(node);
        if (!queue) continue;
        best = node;
        bestLoad = load;
        bestQueue = queue;
      }
      if (!best || !bestQueue) break;
      const job = bestQueue.pop()!;
      this.waiting.delete(job.uid);
      this.lastServed.set(job.computeId, ++this.dispatches);
      best.running.set(job.uid, job);
      this.hooks.dispatch(best.key, job);
    }
    this.rebalance();
  }

  /**
   * Nodes with idle CPUs and nothing queued for them take jobs that wait on other nodes behind
   * running ones (sent ahead): those are asked back (`reclaim`), at most as many as CPUs are
   * idle, the last sent first. A node is asked only for jobs beyond its CPUs, which cannot all be
   * running there, so a job taken never makes its new node one to take from; one request per node
   * at a time.
   */
  private rebalance(): void {
    if (!this.hooks.reclaim || this.nodes.size < 2) return;
    const taking: EngineNodeState<J>[] = [];
    for (const node of this.nodes.values()) {
      if (node.running.size < Math.min(node.cpus, node.share ?? node.cpus)) taking.push(node);
    }
    if (taking.length === 0) return;
    const idle = new Map(taking.map((node) => [node, Math.min(node.cpus, node.share ?? node.cpus) - node.running.size]));
    for (const from of this.nodes.values()) {
      if (from.reclaiming.size > 0) continue;
      let extra = from.running.size - from.cpus;
      if (extra <= 0) continue;
      const asked: J[] = [];
      const sent = [...from.running.values()];
      for (let i = sent.length - 1; i >= 0 && extra > 0; i--) {
        const job = sent[i]!;
        if (from.started.has(job.uid) || job.pinnedHost !== undefined || this.hooks.movable?.(job) === false) continue;
        const to = taking.find((node) => node !== from && idle.get(node)! > 0 && node.computeIds.has(job.computeId));
        if (!to) continue;
        idle.set(to, idle.get(to)! - 1);
        extra--;
        asked.push(job);
      }
      if (asked.length === 0) continue;
      for (const job of asked) from.reclaiming.add(job.uid);
      this.hooks.reclaim(from.key, asked);
    }
  }

  /** The queue a node should take its next job from: pinned jobs first, then the most urgent. */
  private queueFor(node: EngineNodeState<J>): JobQueue<J> | undefined {
    for (const pinned of [this.pinned.get(node.key), this.pinned.get(node.host)]) {
      const head = pinned?.peek();
      if (head && node.computeIds.has(head.computeId)) return pinned;
    }
    let chosen: JobQueue<J> | undefined;
    let chosenPriority = -Infinity;
    let chosenServed = Infinity;
    for (const computeId of node.computeIds) {
      const queue = this.queues.get(computeId);
      const head = queue?.peek();
      if (!head) continue;
      const served = this.lastServed.get(computeId) ?? 0;
      if (!chosen || head.priority > chosenPriority || (head.priority === chosenPriority && served < chosenServed)) {
        chosen = queue;
        chosenPriority = head.priority;
        chosenServed = served;
      }
    }
    return chosen;
  }
}

function getOrCreate<J extends Queueable>(map: Map<string, JobQueue<J>>, key: string): JobQueue<J> {
  let queue = map.get(key);
  if (!queue) {
    queue = new JobQueue();
    map.set(key, queue);
  }
  return queue;
}
