/** Wire protocol version; peers with another version refuse each other with a clear error. */
export const PROTOCOL_VERSION = 6;

/** Default ports, as in dispy's reference. */
export const DEFAULT_CLIENT_PORT = 51347;
export const DEFAULT_NODE_PORT = 51348;
/** dispyscheduler's TCP port for SharedJobClusters (toward nodes it uses DEFAULT_CLIENT_PORT, as a client does). */
export const DEFAULT_SCHEDULER_PORT = 51349;
