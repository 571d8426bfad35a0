import { z } from 'zod';
import { OptionError } from '@dispy/protocol';
import { LOG_LEVELS, formatZodError, type LogLevel } from '@dispy/protocol/internal';

/** Default port of the monitor, as dispy's. */
export const DEFAULT_MONITOR_PORT = 8181;

/** Options of `DispyHTTPServer`. */
export interface DispyHTTPServerOptions {
  /** Address to serve on (default `127.0.0.1`: this host only). */
  host?: string;
  /** TCP port (default 8181; 0: any free port, see `address`). */
  port?: number;
  /**
   * A secret every request and WebSocket must carry: given once as `?token=` in the address, then
   * kept by the browser in an HttpOnly cookie. Without it, every request is answered 403.
   */
  token?: string;
  /** PEM key of `certfile` (default: `certfile`, which may hold both). */
  keyfile?: string;
  /** PEM certificate: serve HTTPS (and WSS) instead of HTTP. */
  certfile?: string;
  /** Show each running job's arguments on the node pages (default false: they may hold what should not be on a screen). */
  showJobArgs?: boolean;
  /**
   * Serve on an address other than loopback without a `token`: anyone who reaches the port could
   * then see and cancel jobs and close nodes. Default false: the server refuses to start.
   */
  allowRemoteWithoutToken?: boolean;
  loglevel?: LogLevel;
}

const schema = z
  .object({
    host: z
      .string({ invalid_type_error: 'must be an IP address or a host name' })
      .min(1, 'must be an IP address or a host name')
      .default('127.0.0.1'),
    port: z
      .number({ invalid_type_error: 'must be an integer 0..65535' })
      .int('must be an integer 0..65535')
      .min(0, 'must be an integer 0..65535')
      .max(65535, 'must be an integer 0..65535')
      .default(DEFAULT_MONITOR_PORT),
    token: z.string({ invalid_type_error: 'must be a string of at least 8 characters' }).min(8, 'must be at least 8 characters').optional(),
    keyfile: z.string({ invalid_type_error: 'must be the path of a PEM key' }).min(1).optional(),
    certfile: z.string({ invalid_type_error: 'must be the path of a PEM certificate' }).min(1).optional(),
    showJobArgs: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
    allowRemoteWithoutToken: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
    loglevel: z.enum(LOG_LEVELS, { errorMap: () => ({ message: `must be one of ${LOG_LEVELS.join(', ')}` }) }).default('warn'),
  })
  .strict();

/** The options checked, with their defaults. */
export type MonitorSettings = z.output<typeof schema>;

/** Python dispy's names that this project spells or does differently. */
const DISPY_NAMES: Readonly<Record<string, string>> = {
  poll_sec: 'not needed here: the page is updated as the cluster changes, over a WebSocket',
  DocumentRoot: 'not supported: the page ships with @dispy/monitor',
};

/**
 * Checks the options and applies defaults.
 * @throws OptionError naming each wrong option, its value and what is accepted
 */
export function resolveMonitorOptions(options: unknown): MonitorSettings {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new OptionError(`DispyHTTPServer: options must be an object, got ${Array.isArray(options) ? 'an array' : String(options)}`);
  }
  const parsed = schema.safeParse(options);
  if (!parsed.success)
    throw new OptionError(formatZodError(parsed.error, 'DispyHTTPServer', Object.keys(schema.shape), options, DISPY_NAMES));
  const settings = parsed.data;
  if (settings.keyfile !== undefined && settings.certfile === undefined) {
    throw new OptionError('DispyHTTPServer: option "keyfile" needs "certfile" (the certificate to serve HTTPS with)');
  }
  return settings;
}
