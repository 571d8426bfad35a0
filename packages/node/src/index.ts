export { DispyNodeServer, type NodeStatus } from './node-server.js';
export { defaultDestPathPrefix, nodeOptionsSchema, parseSize, resolveCpus, type NodeOptions, type ResolvedNodeOptions } from './options.js';
export { measureAvailInfo, type AvailInfo } from './avail-info.js';
