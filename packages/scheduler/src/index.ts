export { SchedulingEngine, type EngineJob, type EngineHooks, type EngineNodeState } from './engine/scheduling-engine.js';
export { JobQueue, type Queueable } from './engine/job-queue.js';
