export { JobCluster, type SubmitJobOptions } from './cluster/job-cluster.js';
export { SharedJobCluster, type SharedJobClusterOptions } from './cluster/shared-job-cluster.js';
export { DispyJob } from './job/dispy-job.js';
export { recoverJobs, readRecoverFile, type RecoverJobsOptions, type RecoverFileContents } from '@dispy/recover';
export { DispyNode, type DispyNodeAvailInfo } from './node/dispy-node.js';
export { NodeAllocate, type NodeAllocateOptions } from './node/node-allocate.js';
export type { JobClusterOptions } from './cluster/options.js';
export type { ClusterStats, NodeStats } from './cluster/stats.js';
export { DispyError, ErrorCode, OptionError, ComputationError, UnsendableValueError, AuthError } from '@dispy/protocol';
