import type { dispy } from '@dispy/protocol';
import type { EngineJob } from '../engine/scheduling-engine.js';

/** A node's availability, measured on the node. */
export interface AvailInfo {
  cpu: number;
  memory: number;
  disk: number;
  swap: number;
}

/** A node that serves (or served) a computation, as the scheduler knows it. */
export interface NodeInfo {
  /** host:port, unique per node. */
  readonly key: string;
  readonly host: string;
  readonly port: number;
  readonly name: string;
  /** CPUs used for the computation there. */
  cpus: number;
  /** CPUs the node has in all. */
  totalCpus: number;
  /** Epoch ms of the last frame from the node. */
  lastHeard: number;
  platform: string;
  availInfo?: AvailInfo;
  /** Bytes sent to and received from the node on its connection. */
  tx: number;
  rx: number;
}

/**
 * Chooses nodes for a computation: `host` is a name, an address or a `*` pattern; `allocate`
 * returns how many CPUs of a discovered node to use (0: not this node). `NodeAllocate` of
 * @dispy/client is one.
 */
export interface NodeAllocator {
  readonly host: string;
  readonly port?: number;
  readonly isWildcard: boolean;
  /** Addresses the scheduler resolved `host` to, when it is a host name. */
  readonly resolved: Set<string>;
  allocate(cluster: unknown, ipAddr: string, name: string, cpus: number, availInfo?: AvailInfo, platform?: string): number;
}

/** A file of this side to send: its name there, its path here, and what proves it. */
export interface LocalFile {
  name: string;
  path: string;
  size: number;
  /** Computed only when needed: when the node has a file of that name and size to compare. */
  sha256?: Uint8Array;
  mode: number;
}

/** A function or class shipped as source. */
export type Definition = dispy.IDefinition;

/** A job handed to the scheduler: its computation, priority, optional node, and arguments. */
export interface SchedulerJob<Ref = unknown> extends EngineJob {
  /** What the submitter keeps for the job (JobCluster: its DispyJob). */
  readonly ref: Ref;
  /** The only node (IP address) that may run it. */
  pinnedHost?: string;
  /** Encoded arguments; kept until the job's final reply, so it can be sent again. */
  args: Uint8Array | undefined;
  /** Node key while it runs. */
  nodeKey?: string;
  /** Seconds it may run once started; undefined: no limit. */
  timeout?: number;
  /** Per-job depends: files sent before the job and removed after it, functions and classes. */
  files?: LocalFile[];
  definitions?: Definition[];
}

/** What the scheduler reports about one computation, in order, never concurrently. */
export interface ComputationEvents<Ref = unknown> {
  /** The computation is set up on a node, which now takes its jobs. */
  nodeUp(node: NodeInfo): void;
  /** A node stopped serving; `lost` are its running jobs that were not resubmitted. */
  nodeDown(node: NodeInfo, lost: SchedulerJob<Ref>[], why: string): void;
  /** A job was sent to a node. */
  jobStarted(job: SchedulerJob<Ref>, node: NodeInfo): void;
  /** A job's final reply (finished, terminated, cancelled) arrived from a node. */
  jobReply(job: SchedulerJob<Ref>, reply: dispy.JobReply, node: NodeInfo): void;
  /** A node refused a job. */
  jobRefused(job: SchedulerJob<Ref>, node: NodeInfo, message: string): void;
  /** A pulse brought the node's availability (`node.availInfo`). */
  nodeAvailInfo(node: NodeInfo): void;
  /** A running job sent an intermediate result. */
  jobProvisional(job: SchedulerJob<Ref>, reply: dispy.JobReply, node: NodeInfo): void;
  /** A job of a node that died went back to the queue (reentrant computation). */
  jobRequeued(job: SchedulerJob<Ref>): void;
  /** A node could not set the computation up (setup failed there); the cluster goes on without it. */
  nodeFailed(node: NodeInfo, error: string): void;
}

/** A computation to run on the nodes the allocators choose. */
export interface ComputationSpec<Ref = unknown> {
  computeId: string;
  name: string;
  kind: dispy.ComputationKind;
  /** Function source, or for a program its file name among `files`. */
  source: string;
  /** depends: functions and classes, { name: value } globals (value codec), files. */
  definitions: Definition[];
  values?: Uint8Array;
  files: LocalFile[];
  setup?: Definition;
  cleanupFunction?: Definition;
  /** Per-node extras from the allocator that chose the node: more files, setup arguments. */
  nodeExtras?(allocator: NodeAllocator): Promise<{ files: LocalFile[]; setupArgs?: Uint8Array }>;
  destPath: string;
  cleanup: boolean;
  allocators: NodeAllocator[];
  /** Jobs of a node that dies are resubmitted elsewhere (true) or reported lost (false). */
  reentrant: boolean;
  /** Seconds between the nodes' pulses (0: none); a node silent for 5 of them is presumed dead. */
  pulseInterval: number;
  /** Passed to `allocate` as its first argument (the user's cluster object). */
  owner: unknown;
  /** Nodes deallocated for this computation: not set up again when they answer discovery. */
  excluded?: Set<string>;
  events: ComputationEvents<Ref>;
}
