import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_NODE_PORT, OptionError } from '@dispy/protocol';
import { LOG_LEVELS, type LogLevel } from '@dispy/protocol/internal';

/**
 * The default `destPathPrefix`, private to the node's user: `$XDG_STATE_HOME/dispy` when that is
 * set, else `/var/lib/dispy` for root, else `~/.local/state/dispy`. Never under a directory that
 * every user may write to (such as /tmp), where another user could make it first.
 */
export function defaultDestPathPrefix(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.()): string {
  const state = env.XDG_STATE_HOME;
  if (state && path.isAbsolute(state)) return path.join(state, 'dispy');
  if (uid === 0) return '/var/lib/dispy';
  return path.join(os.homedir(), '.local', 'state', 'dispy');
}

/** A daily time of day: HH:MM (or HH:MM:SS). */
const timeOfDay = z.string().regex(/^([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?$/, 'must be a time of day HH:MM (00:00 to 23:59)');

/**
 * Options of a node, shared by `DispyNodeServer` and the `dispynode` CLI (whose flags, config
 * file and --help are generated from the descriptions here).
 */
export const nodeOptionsSchema = z
  .object({
    cpus: z
      .number({ invalid_type_error: 'cpus must be an integer' })
      .int('cpus must be an integer')
      .default(0)
      .describe('CPUs to serve: 0 all, negative: that many fewer than the machine has'),
    hosts: z.array(z.string().min(1)).default([]).describe('addresses to serve on (repeatable); default: all interfaces'),
    port: z
      .number()
      .int()
      .min(0, 'port must be 0..65535')
      .max(65535, 'port must be 0..65535')
      .default(DEFAULT_NODE_PORT)
      .describe('TCP and UDP port of the node (0: any free port)'),
    name: z
      .string()
      // The name travels in the Hello frame, which a client takes only up to 1 KiB.
      .max(255, 'must be at most 255 characters')
      .default(() => os.hostname())
      .describe('name shown to clients'),
    destPathPrefix: z
      .string()
      .min(1)
      .default(() => defaultDestPathPrefix())
      .describe(
        'directory under which computations keep their files, private to this user (default: $XDG_STATE_HOME/dispy, ~/.local/state/dispy, or /var/lib/dispy for root)',
      ),
    secret: z.string().default('').describe('shared secret clients must prove'),
    certfile: z.string().min(1).optional().describe('PEM certificate of this node: with it, the node serves TLS only'),
    keyfile: z.string().min(1).optional().describe('PEM private key of the certificate (default: certfile, which may hold it)'),
    cafile: z
      .string()
      .min(1)
      .optional()
      .describe("PEM CA that signs clients' certificates, with --require-client-cert (default: certfile itself)"),
    requireClientCert: z.boolean().default(false).describe('mutual TLS: refuse clients without a certificate signed by --cafile'),
    loglevel: z
      .enum(LOG_LEVELS)
      .optional()
      .describe(`log level: ${LOG_LEVELS.join(', ')} (default info)`),
    logLevel: z.enum(LOG_LEVELS).optional().describe('the same as loglevel'),
    extHosts: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'address clients must connect to instead of the served one (NAT, port forwarding), repeatable: paired with --host by position, one alone stands for every served address',
      ),
    ipv4UdpMulticast: z
      .boolean()
      .default(false)
      .describe('also hear discovery pings sent to the IPv4 multicast group 239.255.61.59, and announce there instead of by broadcast'),
    serve: z.number().int('serve must be an integer').default(-1).describe('serve this many clients, then exit (-1: no limit)'),
    maxClients: z
      .number()
      .int('max clients must be an integer')
      .min(0, 'max clients must be 0 (no limit) or more')
      .default(0)
      .describe('computations served at once, from any clients (0: no limit); one more is told to try again later, and its client does'),
    serviceStart: timeOfDay.optional().describe('daily time (HH:MM) to start taking jobs'),
    serviceStop: timeOfDay.optional().describe('daily time (HH:MM) to stop taking new jobs; running ones finish'),
    serviceEnd: timeOfDay.optional().describe('daily time (HH:MM) to terminate running jobs and release the client'),
    clientShutdown: z.boolean().default(false).describe('let a computation stop this node (dispynode_shutdown())'),
    zombieInterval: z
      .number()
      .positive('zombie interval must be a positive number of minutes')
      .default(60)
      .describe(
        "minutes a node keeps a computation whose client's link was lost (its jobs go on, their replies are saved to disk) before it closes it and deletes the saved replies",
      ),
    heartbeatInterval: z
      .number()
      .positive('heartbeat interval must be a positive number of seconds')
      .default(10)
      .describe('seconds without sending after which the node sends a heartbeat; a link silent 4 times as long is presumed dead'),
    clean: z.boolean().default(false).describe('remove what an earlier node left under the prefix (and stop its processes)'),
    maxFileSize: z
      .number()
      .int()
      .min(0)
      .default(10 * 1024 * 1024)
      .describe('largest file a client may send or a job may send back, in bytes (0: no limit)'),
    maxOutputSize: z
      .number()
      .int()
      .min(0)
      .default(1024 * 1024)
      .describe("cap on each of a job's stdout, stderr and exception text, in bytes; the rest is cut, with a marker (0: no cap)"),
    schedulerHost: z.string().optional().describe('announce this node to a client or scheduler at HOST[:PORT]'),
    pingInterval: z
      .number()
      .positive('ping interval must be a positive number of seconds')
      .optional()
      .describe('seconds between announcements of this node while it is idle'),
  })
  .strict();

/** Options of a node as given: `loglevel` may also be spelled `logLevel`. */
export type NodeOptions = z.input<typeof nodeOptionsSchema>;

/** Options of a node with their defaults applied, the log level under its one name. */
export type ResolvedNodeOptions = Omit<z.output<typeof nodeOptionsSchema>, 'loglevel' | 'logLevel'> & { loglevel: LogLevel };

/** Applies one spelling of the log level (`logLevel` is an alias of `loglevel`). */
export function resolveLogLevel(options: z.output<typeof nodeOptionsSchema>): ResolvedNodeOptions {
  const { loglevel, logLevel, ...rest } = options;
  if (loglevel !== undefined && logLevel !== undefined && loglevel !== logLevel) {
    throw new OptionError(
      `loglevel and logLevel (its alias) differ: ${JSON.stringify(loglevel)} and ${JSON.stringify(logLevel)}; give one`,
    );
  }
  return { ...rest, loglevel: loglevel ?? logLevel ?? 'info' };
}

/**
 * How many CPUs `cpus` means on this machine.
 * @throws OptionError naming the accepted range when it is impossible
 */
export function resolveCpus(cpus: number, available = os.availableParallelism()): number {
  if (cpus > available) throw new OptionError(`cpus must be at most ${available} on this machine, got ${cpus}`);
  const resolved = cpus > 0 ? cpus : available + cpus;
  if (resolved < 1) {
    throw new OptionError(`cpus ${cpus} leaves no CPU to serve (this machine has ${available})`);
  }
  return resolved;
}
