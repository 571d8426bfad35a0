/** `@dispy/netrelay`: `DispyNetRelay`, the relay of discovery between networks (the library behind `dispynetrelay`). */
export {
  DispyNetRelay,
  PING_ANSWER_MS,
  MAX_CLIENTS,
  MAX_ANNOUNCED_NODES,
  SCHEDULER_NODES_INTERVAL_MS,
  type NetRelayStatus,
} from './net-relay.js';
export { DEFAULT_CLIENT_TTL, type DispyNetRelayOptions } from './net-relay-options.js';
export { parseHostPort, type HostPort } from './host-port.js';
