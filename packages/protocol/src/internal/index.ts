/**
 * The `@dispy/protocol/internal` entry: helpers the dispy packages share that are not part of
 * the wire: the logger, option-error formatting, network address helpers, and the replies kept
 * for clients (in memory until acknowledged, on disk while the client is away). Not a public API:
 * anything here may change in any release.
 */
export { createLogger, LOG_LEVELS, type Logger, type LogLevel } from './logger.js';
export {
  IPV4_MULTICAST_GROUP,
  IPV6_MULTICAST_GROUP,
  isWildcard,
  isLinkLocal,
  withoutScope,
  withScopeOf,
  interfaceAddresses,
  interfaceOf,
  ipv6Interfaces,
  ipv6OnlyInterfaces,
  localAddressFacing,
  broadcastAddressOf,
  broadcastAddresses,
  type InterfaceAddress,
} from './addresses.js';
export { formatZodError, suggestOption } from '../errors/format-zod-error.js';
export { DropSummary, SUMMARY_INTERVAL_MS } from './drop-summary.js';
export { SavedReplies, SAVED_REPLIES_DIR, scanSavedReplies, type SavedMeta } from './saved-replies.js';
export { KeptReplies, type ReplySink } from './kept-replies.js';
export { parseSize } from './parse-size.js';
export {
  cliFlags,
  cliModule,
  cliHelp,
  parseCli,
  readSecretFile,
  runCli,
  saveCliConfig,
  secretFlags,
  secretWarning,
  type CliApp,
  type CliFlag,
  type CliServer,
  type CliSettings,
  type CliSpec,
} from './cli.js';
export {
  MONITOR_SOURCE,
  THROUGHPUT_BUCKETS,
  THROUGHPUT_BUCKET_MS,
  ThroughputHistory,
  type MonitorJob,
  type MonitorJobCounts,
  type MonitorNode,
  type MonitorSnapshot,
  type MonitorSource,
  type MonitorSourceProvider,
} from './monitor-source.js';
