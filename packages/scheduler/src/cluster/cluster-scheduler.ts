import type { ComputationSpec, JobRequest, LocalFile, NodeAllocator, NodeInfo, SchedulerJob } from './types.js';

/**
 * What a cluster asks of its scheduler: `JobScheduler` (JobCluster, in the program) and
 * `RemoteScheduler` (SharedJobCluster, through dispyscheduler) both do it, so one cluster class
 * serves both. See `JobScheduler` for what each method does.
 */
export interface ClusterScheduler<Ref = unknown, Owner = unknown, Alloc extends NodeAllocator<Owner> = NodeAllocator<Owner>> {
  addComputation(spec: ComputationSpec<Ref, Owner, Alloc>): Promise<void>;
  submit(request: JobRequest<Ref>): SchedulerJob<Ref>;
  cancel(job: SchedulerJob<Ref>): 'dequeued' | 'sent' | 'unknown';
  drop(job: SchedulerJob<Ref>): boolean;
  nodesOf(computeId: string): NodeInfo[];
  runningOn(nodeKey: string): SchedulerJob<Ref>[];
  allocate(computeId: string, allocator: Alloc): Promise<void>;
  deallocate(computeId: string, nodeKey: string): boolean | Promise<boolean>;
  closeNode(computeId: string, nodeKey: string, terminatePending: boolean): Promise<boolean>;
  setNodeCpus(computeId: string, nodeKey: string, cpus: number): Promise<number>;
  sendFile(computeId: string, nodeKey: string, file: LocalFile): Promise<boolean>;
  setActive(active: boolean): void;
  close(): Promise<void>;
}
