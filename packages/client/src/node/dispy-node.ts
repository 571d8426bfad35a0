import type { AvailInfo } from '@dispy/scheduler';

/** A node's availability, measured on the node (`{ cpu, memory, disk, swap }`). */
export type DispyNodeAvailInfo = AvailInfo;

/** A node serving a cluster, with its counters. Read it; the cluster updates it. */
export class DispyNode {
  /** Set up for the cluster and ready for jobs. */
  static readonly Initialized = 4;
  /** No longer serving the cluster. */
  static readonly Closed = 16;
  /** New availability information arrived. */
  static readonly AvailInfo = 17;

  /** CPUs the cluster uses on the node. */
  cpus = 0;
  /** CPUs the node has in all. */
  availCpus = 0;
  /** Jobs running there now: started by a worker of the node (at most `cpus`). */
  busy = 0;
  /**
   * Jobs sent to the node that wait there for a worker, behind running ones (short jobs are sent
   * ahead, so that a worker starts its next one without a round trip); not counted in `busy`.
   * The cluster takes them back for another node when one has idle CPUs.
   */
  queued = 0;
  jobsDone = 0;
  /** Seconds the cluster's jobs ran there, each from its start to its end on the node (dispy's `cpu_time`). */
  jobTime = 0;
  /** Seconds of CPU the cluster's jobs used there (0 for programs: not measured). */
  cpuTime = 0;
  /** Bytes sent to the node. */
  tx = 0;
  /** Bytes received from the node. */
  rx = 0;
  /** Epoch ms of the last message from the node. */
  updateTime = Date.now();
  availInfo: DispyNodeAvailInfo | undefined;
  platform = '';
  /** Why the cluster's setup failed on this node (reported with status Closed). */
  setupError: string | undefined;

  /** @internal Nodes are created by the cluster when it finds them. */
  constructor(
    /** IP address the node serves on. */
    readonly ipAddr: string,
    /** TCP port of the node. */
    readonly port: number,
    /** The node's name (its host name unless set with --name). */
    readonly name: string,
  ) {}
}
