export { SchedulingEngine, pipelineDepth, type EngineJob, type EngineHooks, type EngineNodeState, type EngineOptions } from './engine/scheduling-engine.js';
export { JobQueue, type Queueable } from './engine/job-queue.js';
