export {
  SchedulingEngine,
  pipelineDepth,
  type EngineJob,
  type EngineHooks,
  type EngineNodeState,
  type EngineOptions,
} from './engine/scheduling-engine.js';
export { JobQueue, type Queueable } from './engine/job-queue.js';
export { JobScheduler } from './cluster/job-scheduler.js';
export type { JobSchedulerOptions, Discovery } from './cluster/job-scheduler-options.js';
export { DEFAULT_MAX_FILE_SIZE, DEFAULT_MAX_JOB_FILES_SIZE, DEFAULT_MAX_RETRIES } from './cluster/job-scheduler-options.js';
export { toAvailInfo, type AvailInfo } from './cluster/avail-info.js';
export { describeFiles } from './cluster/local-files.js';
export type {
  ComputationEvents,
  ComputationSpec,
  Definition,
  JobEndStatus,
  JobOutcome,
  JobPin,
  JobRequest,
  LocalFile,
  NodeAllocator,
  NodeExtras,
  NodeInfo,
  SchedulerJob,
} from './cluster/types.js';
export { NodeConnection, type NodeConnectionOptions } from './session/node-connection.js';
export { NodeFinder, type NodeFinderOptions } from './discovery/node-finder.js';
export { DispyScheduler, type DispySchedulerOptions, type ComputationWatcher } from './server/dispy-scheduler.js';
export { RemoteScheduler, type RemoteSchedulerOptions } from './server/remote-scheduler.js';
export type { ClusterScheduler } from './cluster/cluster-scheduler.js';
