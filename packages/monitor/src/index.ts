export { DispyHTTPServer, type MonitorTarget } from './dispy-http-server.js';
export { DEFAULT_MONITOR_PORT, type DispyHTTPServerOptions } from './monitor-options.js';
export { PUSH_INTERVAL_MS } from './monitor-hub.js';
export { isLoopbackHost } from './access.js';
