import type { dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { ComputationEvents, JobPin, LocalFile, SchedulerJob } from '../cluster/types.js';
import type { ClientAllocation } from './client-allocations.js';
import type { ClientLink } from './client-link.js';
import type { ClientJobRef, KeptClientComputations } from './kept-client-computations.js';

/** What a client's connection needs of the scheduler that hosts it. */
export interface ClientLinkContext {
  /** The cluster secret. */
  readonly secret: string;
  readonly logger: Logger;
  /** Told to the client in AuthResult: seconds between heartbeats (a client silent for 4 of them is presumed dead). */
  readonly heartbeatSeconds: number;
  readonly zombieSeconds: number;
  /** The scheduler's name, sent in AuthResult. */
  readonly name: string;
  /** Where the depends files of the clients' computations are kept, one directory per computation. */
  readonly fileDir: string;
  /** Largest depends file accepted, in bytes (0: no limit). */
  readonly maxFileSize: number;
  /**
   * Adds a client's computation to the scheduler (its depends files are in place); `allocations`
   * (sent before the Setup, with per-node depends, setup arguments or CPUs) replace `nodes`.
   */
  addComputation(
    setup: dispy.Setup,
    files: LocalFile[],
    nodes: string[],
    events: ComputationEvents<ClientJobRef>,
    allocations?: ClientAllocation[],
  ): Promise<void>;
  /** The node operations of a client's computation (SharedJobCluster's sendFile, allocateNode, closeNode, ...). */
  readonly nodeOps: ClientNodeOps;
  submit(request: {
    computeId: string;
    priority: number;
    ref: ClientJobRef;
    args: Uint8Array;
    pin?: JobPin;
    timeout?: number;
    definitions?: dispy.IDefinition[];
    /** Per-job depends files, in place at the scheduler (paths). */
    files?: string[];
  }): SchedulerJob<ClientJobRef>;
  cancel(job: SchedulerJob<ClientJobRef>): 'dequeued' | 'sent' | 'unknown';
  /** Closes a computation on its nodes (its running jobs are terminated) and forgets its jobs. */
  closeComputation(computeId: string): Promise<void>;
  /** The connection has ended and its computations are closed (or kept, see `kept`). */
  onEnd(link: ClientLink): void;
  /**
   * Where computations outlive their connection: a lost client's are kept for it to take back
   * (Reattach) and their replies saved. Without it, they are closed when the connection ends.
   */
  readonly kept?: KeptClientComputations;
}

/** What a client may do to its computation on one node, through the scheduler (as JobCluster does to its own). */
export interface ClientNodeOps {
  /** Copies a file (in place at the scheduler) to a node; false when the node does not serve the computation. */
  sendFile(computeId: string, nodeKey: string, file: LocalFile): Promise<boolean>;
  closeNode(computeId: string, nodeKey: string, terminatePending: boolean): Promise<boolean>;
  deallocate(computeId: string, nodeKey: string): boolean;
  allocate(computeId: string, allocations: ClientAllocation[]): Promise<void>;
  /** Changes the CPUs a computation uses on a node, if the scheduler lets clients (--cooperative, or an exclusive computation). */
  setNodeCpus(computeId: string, nodeKey: string, cpus: number): Promise<dispy.ISetCpusReply>;
  /** The client answered a file a job of its sent (relayed by the scheduler). */
  jobFileDone(client: ClientLink, done: dispy.FileDone): void;
}
