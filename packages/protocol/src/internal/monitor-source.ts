/**
 * What `@dispy/monitor` reads from a cluster and asks of it. A `JobCluster` (and so a
 * `SharedJobCluster`) and each computation of a `DispyScheduler` give one under the key
 * `MONITOR_SOURCE`; the monitor knows nothing else of them, so neither depends on it.
 */
import type { AvailInfo } from '../wire/avail-info.js';

/** The key under which a cluster gives its monitor view: `cluster[MONITOR_SOURCE]()`. `Symbol.for`, so that it holds across duplicated installs. */
export const MONITOR_SOURCE: unique symbol = Symbol.for('dispy.monitorSource');

/** How many of a cluster's jobs are in each state. */
export interface MonitorJobCounts {
  /** Every job submitted since the cluster was created. */
  submitted: number;
  /** Not running yet: waiting here or sent ahead to a node. */
  queued: number;
  running: number;
  finished: number;
  /** Terminated (threw, timed out, its node died). */
  failed: number;
  cancelled: number;
}

/** One node serving a cluster. */
export interface MonitorNode {
  /** `host:port`: how actions name the node. */
  key: string;
  name: string;
  ipAddr: string;
  port: number;
  /** CPUs the cluster uses there. */
  cpus: number;
  /** CPUs the node has. */
  availCpus: number;
  /** Jobs running there now. */
  busy: number;
  jobsDone: number;
  /** Average seconds a job ran there (start to end). */
  secPerJob: number;
  /** Seconds of CPU the cluster's jobs used there. */
  cpuTime: number;
  /** Bytes sent to and received from the node. */
  tx: number;
  rx: number;
  /** CPU idle %, memory and disk available (bytes), swap free %, as the node last reported them. */
  availInfo?: AvailInfo;
  /** Epoch ms of the last news from the node. */
  updateTime: number;
}

/** A cluster as the monitor shows it. */
export interface MonitorSnapshot {
  name: string;
  jobs: MonitorJobCounts;
  nodes: MonitorNode[];
  /** Jobs ended in each of the last buckets of `THROUGHPUT_BUCKET_MS`, oldest first, the current (partial) one last. */
  throughput: number[];
}

/** A job running on a node. */
export interface MonitorJob {
  /** How actions name the job (unique in its cluster). */
  key: string;
  /** The job's `id` as text, if the program gave one. */
  id: string;
  /** The arguments as text: only when asked for (`showJobArgs`), else undefined. */
  args?: string;
  /** Epoch ms it started on its node. */
  startTime: number;
}

/** A cluster the monitor can show and act on. Actions resolve whether they were done. */
export interface MonitorSource {
  readonly name: string;
  snapshot(): MonitorSnapshot;
  /** The jobs running on a node (key `host:port`) now. */
  nodeJobs(nodeKey: string): MonitorJob[];
  /**
   * Calls `listener` after each change (synchronously, possibly many times a second: the caller
   * coalesces). With `jobArgs`, the source keeps the arguments of jobs submitted from then on, for
   * `nodeJobs`. Returns the function that stops it.
   */
  onChange(listener: () => void, options?: { jobArgs?: boolean }): () => void;
  cancelJob(jobKey: string): Promise<boolean>;
  /** Resolves the CPUs now used there, or -1. */
  setNodeCpus(nodeKey: string, cpus: number): Promise<number>;
  /** Adds a node by host name, address or `*` pattern. */
  allocateNode(host: string): Promise<boolean>;
  deallocateNode(nodeKey: string): Promise<boolean>;
  closeNode(nodeKey: string): Promise<boolean>;
}

/** What has a monitor view (a JobCluster, a SharedJobCluster). */
export interface MonitorSourceProvider {
  [MONITOR_SOURCE](): MonitorSource;
}

/** Width of one throughput bucket. */
export const THROUGHPUT_BUCKET_MS = 10_000;
/** Buckets kept: the last ten minutes. */
export const THROUGHPUT_BUCKETS = 60;

/** Counts jobs ended per `THROUGHPUT_BUCKET_MS`, over the last `THROUGHPUT_BUCKETS` of them. */
export class ThroughputHistory {
  private readonly counts: number[] = new Array<number>(THROUGHPUT_BUCKETS).fill(0);
  /** The bucket index (time / width) of `counts`' last entry. */
  private last = Math.floor(Date.now() / THROUGHPUT_BUCKET_MS);

  record(now = Date.now()): void {
    this.advance(now);
    this.counts[THROUGHPUT_BUCKETS - 1]!++;
  }

  series(now = Date.now()): number[] {
    this.advance(now);
    return [...this.counts];
  }

  private advance(now: number): void {
    const bucket = Math.floor(now / THROUGHPUT_BUCKET_MS);
    const shift = Math.min(THROUGHPUT_BUCKETS, bucket - this.last);
    if (shift <= 0) return;
    this.counts.splice(0, shift);
    for (let i = 0; i < shift; i++) this.counts.push(0);
    this.last = bucket;
  }
}
