export { DispyNodeServer, type NodeStatus } from './node-server.js';
export { parseSize } from '@dispy/protocol/internal';
export { defaultDestPathPrefix, nodeOptionsSchema, resolveCpus, type NodeOptions, type ResolvedNodeOptions } from './options.js';
export { measureAvailInfo, type AvailInfo } from './avail-info.js';
