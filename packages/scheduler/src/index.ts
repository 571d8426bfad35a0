export { SchedulingEngine, pipelineDepth, type EngineJob, type EngineHooks, type EngineNodeState, type EngineOptions } from './engine/scheduling-engine.js';
export { JobQueue, type Queueable } from './engine/job-queue.js';
export { JobScheduler, type JobSchedulerOptions } from './cluster/job-scheduler.js';
export type { AvailInfo, ComputationEvents, ComputationSpec, Definition, LocalFile, NodeAllocator, NodeInfo, SchedulerJob } from './cluster/types.js';
export { NodeConnection, type NodeConnectionOptions } from './session/node-connection.js';
export { NodeFinder, type NodeFinderOptions } from './discovery/node-finder.js';
