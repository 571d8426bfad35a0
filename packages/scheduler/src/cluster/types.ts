import type { dispy } from '@dispy/protocol';
import type { EngineJob } from '../engine/scheduling-engine.js';
import type { AvailInfo } from './avail-info.js';

export type { AvailInfo } from './avail-info.js';

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
 * returns how many CPUs of a discovered node to use (0: not this node), given the computation's
 * `owner` (`ComputationSpec.owner`). `NodeAllocate` of @dispy/client is one.
 */
export interface NodeAllocator<Owner = unknown> {
  readonly host: string;
  readonly port?: number;
  readonly isWildcard: boolean;
  /** Addresses the scheduler resolved `host` to, when it is a host name. */
  readonly resolved: Set<string>;
  /** CPUs to use on the nodes it chooses (0: all; negative: that many fewer), for a scheduler that cannot call `allocate` (dispyscheduler). */
  readonly cpus?: number;
  allocate(cluster: Owner, ipAddr: string, name: string, cpus: number, availInfo?: AvailInfo, platform?: string): number;
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

/** Where a job must run: one node (its key `host:port`), or any node at a host (an IP address or a name). */
export type JobPin = { readonly key: string } | { readonly host: string };

/** What `JobScheduler.submit` takes. */
export interface JobRequest<Ref = unknown> {
  readonly computeId: string;
  /** Higher runs first; FIFO within a priority. */
  readonly priority: number;
  /** What the submitter keeps for the job (JobCluster: its DispyJob); handed back with every event. */
  readonly ref: Ref;
  /**
   * The encoded argument list (value codec). The scheduler owns it from `submit` on: it keeps it
   * while the job may have to be sent (again, if its node goes away), and lets it go when the
   * job ends. The submitter must not change it.
   */
  readonly args: Uint8Array;
  /** Only this node, or a node at this host, may run the job; a host name is resolved first (the job is held meanwhile). */
  readonly pin?: JobPin;
  /** Seconds it may run once started; undefined: no limit. */
  readonly timeout?: number;
  /**
   * Per-job depends files (paths here): sent before the job and removed after it on the node. The
   * job is held until they are described; one that cannot be read then or at dispatch ends the
   * job `terminated`, naming it, and the node never waits for it.
   */
  readonly files?: readonly string[];
  /** Per-job depends functions and classes. */
  readonly definitions?: Definition[];
}

/** A job as the scheduler reports it to its submitter. */
export interface SchedulerJob<Ref = unknown> {
  /** Unique per scheduler; the job's id on the wire. */
  readonly uid: number;
  readonly computeId: string;
  readonly priority: number;
  readonly ref: Ref;
  /** Key of the node it runs on; undefined while it waits. */
  readonly nodeKey?: string;
}

/** How a job ended on its node (or without running: see `ComputationEvents.jobFailed`). */
export type JobEndStatus = 'finished' | 'terminated' | 'cancelled';

/** A job's final reply from its node, in the scheduler's terms. */
export interface JobOutcome {
  status: JobEndStatus;
  /** The encoded result (value codec) when `finished`; empty otherwise. */
  result: Uint8Array;
  stdout: string;
  stderr: string;
  /** Why it did not finish (the stack trace of what it threw, or the node's reason); empty when it finished. */
  exception: string;
  /** Epoch ms on the node; 0 when it never started. */
  startTime: number;
  endTime: number;
  /** Seconds of CPU the job used. */
  cpuTime: number;
}

/** What the scheduler reports about one computation, in order, never concurrently. */
export interface ComputationEvents<Ref = unknown> {
  /** The computation is set up on a node, which now takes its jobs. */
  nodeUp(node: NodeInfo): void;
  /** A node stopped serving; `lost` are its running jobs that were not resubmitted (they are over). */
  nodeDown(node: NodeInfo, lost: SchedulerJob<Ref>[], why: string): void;
  /** A node could not set the computation up (setup failed there); the cluster goes on without it. */
  nodeFailed(node: NodeInfo, error: string): void;
  /** A pulse brought the node's availability (`node.availInfo`). */
  nodeAvailInfo(node: NodeInfo): void;
  /** A job was handed to a node (its per-job files go first): it waits there for a worker. */
  jobStarted(job: SchedulerJob<Ref>, node: NodeInfo): void;
  /**
   * Workers of `node` started these jobs (handed to it before), each at `startTime` (epoch ms,
   * the node's clock; 0: unknown). Batched; a job that ends soon after it starts may have no
   * such event: its `jobDone` outcome carries its start time.
   */
  jobsRunning(started: ReadonlyArray<{ job: SchedulerJob<Ref>; startTime: number }>, node: NodeInfo): void;
  /** A running job sent an intermediate result (encoded). */
  jobProvisional(job: SchedulerJob<Ref>, result: Uint8Array, node: NodeInfo): void;
  /** A job's final reply (finished, terminated, cancelled) arrived from its node. */
  jobDone(job: SchedulerJob<Ref>, outcome: JobOutcome, node: NodeInfo): void;
  /**
   * A job ended without a reply from a node: a node refused it, its files could not be read, its
   * pinned host name did not resolve, it was cancelled before it went out. `node` is the node it
   * had been handed to (after `jobStarted`), if any.
   */
  jobFailed(job: SchedulerJob<Ref>, status: Exclude<JobEndStatus, 'finished'>, why: string, node?: NodeInfo): void;
  /**
   * A job left node `from` (it went away, takes no new jobs, or gave it back unstarted for a node
   * with idle CPUs) and went back to the queue.
   */
  jobRequeued(job: SchedulerJob<Ref>, from: NodeInfo): void;
}

/** Per-node extras of a computation, from the allocator that chose the node. */
export interface NodeExtras {
  files: LocalFile[];
  /** Encoded arguments to the computation's setup function on that node. */
  setupArgs?: Uint8Array;
}

/**
 * A computation to run on the nodes the allocators choose. `Ref` is what the submitter keeps per
 * job, `Owner` what allocators get as their first argument, `Allocator` the submitter's own
 * allocator type (handed back to `nodeExtras`).
 */
export interface ComputationSpec<Ref = unknown, Owner = unknown, Allocator extends NodeAllocator<Owner> = NodeAllocator<Owner>> {
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
  nodeExtras?(allocator: Allocator, node?: NodeInfo): Promise<NodeExtras>;
  destPath: string;
  cleanup: boolean;
  allocators: Allocator[];
  /** Jobs of a node that dies are resubmitted elsewhere (true) or reported lost (false). */
  reentrant: boolean;
  /** Wants each node alone (Setup.exclusive): a node sets it up only when no other computation runs there. */
  exclusive?: boolean;
  /**
   * With `reentrant`: how many times a job is resubmitted because its node died; the next death
   * ends it `terminated`, listing each node and why. Default `DEFAULT_MAX_RETRIES` (3).
   */
  maxRetries?: number;
  /** Seconds between the nodes' pulses (0: none); a node silent for 5 of them is presumed dead. */
  pulseInterval: number;
  /** Passed to `allocate` as its first argument (the user's cluster object). */
  owner: Owner;
  /** Nodes deallocated for this computation: not set up again when they answer discovery. */
  excluded?: Set<string>;
  events: ComputationEvents<Ref>;
}

/** A job inside the scheduler: the engine's entry, and what only the scheduler changes. */
export interface QueuedJob<Ref = unknown> extends EngineJob, SchedulerJob<Ref> {
  readonly uid: number;
  pinnedHost?: string;
  nodeKey?: string;
  /** Owned by the scheduler (see `JobRequest.args`); undefined once the job has ended. */
  args: Uint8Array | undefined;
  timeout?: number;
  files?: LocalFile[];
  definitions?: Definition[];
  /** Counts the job's dispatches: a step of an earlier one that finds it changed stops. */
  attempt: number;
  /** A cancel came while its files were being sent (or its link was down): the job frame is not sent again. */
  cancelled?: boolean;
  /** Why its nodes died under it, one entry per death (the reentrant retry limit counts them). */
  failures?: string[];
}
