import { z } from 'zod';
import { DEFAULT_CLIENT_PORT, DEFAULT_NODE_PORT, OptionError } from '@dispy/protocol';
import { LOG_LEVELS, formatZodError } from '@dispy/protocol/internal';
import { DEFAULT_MAX_RETRIES } from '@dispy/scheduler';
import { NodeAllocate } from '../node/node-allocate.js';
import type { DispyJob } from '../job/dispy-job.js';
import type { DispyNode } from '../node/dispy-node.js';

const port = (what: string) =>
  z
    .number({ invalid_type_error: `must be an integer 0..65535` })
    .int(`must be an integer 0..65535`)
    .min(0, `must be an integer 0..65535`)
    .max(65535, `must be an integer 0..65535`)
    .describe(what);

const seconds = (min: number, max: number) =>
  z
    .number({ invalid_type_error: `must be a number of seconds ${min}..${max}` })
    .min(min, `must be a number of seconds ${min}..${max}`)
    .max(max, `must be a number of seconds ${min}..${max}`);

const bytes = () =>
  z
    .number({ invalid_type_error: 'must be a number of bytes (0: no limit)' })
    .int('must be a whole number of bytes (0: no limit)')
    .min(0, 'must be a number of bytes (0: no limit)');

// z.function() would wrap the user's function in a validating proxy; only the type is checked.
const fn = <T = (...args: never[]) => unknown>(message: string) => z.custom<T>((value) => typeof value === 'function', { message });

const addresses = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)], {
  errorMap: () => ({ message: 'must be an IP address or host name, or an array of them' }),
});

/** Options of `JobCluster`, validated before anything is started. */
export const clusterOptionsSchema = z
  .object({
    nodes: z
      .array(z.union([z.string().min(1), z.instanceof(NodeAllocate)]), {
        errorMap: () => ({
          message: "must be an array of host names, IP addresses, wildcards like '192.168.1.*', or NodeAllocate objects",
        }),
      })
      .min(1, 'must name at least one node (or "*")')
      .default(['*']),
    depends: z.array(z.unknown()).default([]),
    callback: fn<(job: DispyJob) => void>('must be a function (job) => void').optional(),
    clusterStatus: fn<(status: number, node: DispyNode | undefined, job: DispyJob | undefined) => void>(
      'must be a function (status, node, job) => void',
    ).optional(),
    ipAddr: addresses.optional(),
    extIpAddr: addresses.optional(),
    ipv4UdpMulticast: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
    port: port('client port').default(DEFAULT_CLIENT_PORT),
    nodePort: z
      .number({ invalid_type_error: 'must be an integer 1..65535' })
      .int('must be an integer 1..65535')
      .min(1, 'must be an integer 1..65535')
      .max(65535, 'must be an integer 1..65535')
      .default(DEFAULT_NODE_PORT),
    recoverFile: z.union([z.string(), z.literal(false)]).optional(),
    destPath: z.string().optional(),
    loglevel: z.enum(LOG_LEVELS, { errorMap: () => ({ message: `must be one of ${LOG_LEVELS.join(', ')}` }) }).default('warn'),
    // The node's spelling, accepted as an alias (the one documented is `loglevel`, dispy's).
    logLevel: z.enum(LOG_LEVELS, { errorMap: () => ({ message: `must be one of ${LOG_LEVELS.join(', ')}` }) }).optional(),
    setup: fn('must be a function').optional(),
    cleanup: z
      .union([z.boolean(), fn('must be true, false or a function')], { errorMap: () => ({ message: 'must be true, false or a function' }) })
      .default(true),
    pulseInterval: seconds(1, 600).optional(),
    pingInterval: seconds(0.1, 86_400).optional(),
    reentrant: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
    exclusive: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
    maxRetries: z
      .number({ invalid_type_error: 'must be an integer 0..1000' })
      .int('must be an integer 0..1000')
      .min(0, 'must be an integer 0..1000')
      .max(1000, 'must be an integer 0..1000')
      .default(DEFAULT_MAX_RETRIES),
    secret: z.string({ invalid_type_error: 'must be a string' }).default(''),
    keyfile: z.string({ invalid_type_error: 'must be a file path' }).min(1, 'must be a file path').optional(),
    certfile: z.string({ invalid_type_error: 'must be a file path' }).min(1, 'must be a file path').optional(),
    cafile: z.string({ invalid_type_error: 'must be a file path' }).min(1, 'must be a file path').optional(),
    certFingerprint: z
      .union([z.string(), z.array(z.string()).nonempty()], {
        errorMap: () => ({ message: 'must be a SHA-256 fingerprint (64 hex digits, colons allowed) or a non-empty array of them' }),
      })
      .optional(),
    jobTimeout: seconds(0.001, 31_536_000).optional(),
    fileDir: z.string({ invalid_type_error: 'must be a directory path' }).min(1, 'must be a directory path').optional(),
    maxFileSize: bytes().optional(),
    maxJobFilesSize: bytes().optional(),
  })
  .strict();

/** Options of `JobCluster`; see the reference in docs/ for each. */
export interface JobClusterOptions<R = unknown> {
  nodes?: ReadonlyArray<string | NodeAllocate>;
  depends?: unknown[];
  callback?: (job: DispyJob<R>) => void;
  clusterStatus?: (status: number, node: DispyNode | undefined, job: DispyJob<R> | undefined) => void;
  /** Local addresses for discovery (pings go out on their networks only) and, the first, for connections to nodes; default: every interface. */
  ipAddr?: string | string[];
  /**
   * @deprecated No effect: the client opens every connection (to nodes and to a scheduler) and
   * hears discovery replies on the socket that pinged, so nothing needs its address; a client
   * behind NAT needs no forwarded port. Accepted with a warning.
   */
  extIpAddr?: string | string[];
  /** Discover nodes by the IPv4 multicast group 239.255.61.59 instead of broadcast (dispy's `ipv4_udp_multicast`); nodes need `--ipv4-udp-multicast`. */
  ipv4UdpMulticast?: boolean;
  port?: number;
  nodePort?: number;
  recoverFile?: string | false;
  destPath?: string;
  /** What the cluster logs: 'debug', 'info', 'warn' (default), 'error' or 'silent'. */
  loglevel?: (typeof LOG_LEVELS)[number];
  /** Alias of `loglevel` (the spelling of dispynode's option). */
  logLevel?: (typeof LOG_LEVELS)[number];
  setup?: (...args: never[]) => unknown;
  cleanup?: boolean | ((...args: never[]) => unknown);
  pulseInterval?: number;
  pingInterval?: number;
  reentrant?: boolean;
  /**
   * Have each node alone (default false): a node takes the computation only when no other runs
   * there, and sets no other up until it closes. Until a node is free, the cluster asks again.
   * Without it, a node serves several computations at once, sharing its CPUs fairly.
   */
  exclusive?: boolean;
  /**
   * With `reentrant`: how many times a job is resubmitted because its node died (default 3); the
   * next death ends it `Terminated`, its exception listing each node and why.
   */
  maxRetries?: number;
  secret?: string;
  /** PEM private key of this client's certificate, for nodes that require one (default: `certfile`, which may hold it). */
  keyfile?: string;
  /** PEM certificate this client presents (mutual TLS); alone, it also turns TLS on and is trusted as a CA. */
  certfile?: string;
  /** PEM CA that signed the nodes' certificates: turns TLS on; nodes are verified by it and by their address. */
  cafile?: string;
  /** SHA-256 fingerprint(s) of the nodes' certificates (self-signed): turns TLS on; CA and address are then not checked. */
  certFingerprint?: string | string[];
  jobTimeout?: number;
  /** Directory where files sent by jobs (`dispySendFile`) land, at their relative paths; default: the working directory. */
  fileDir?: string;
  /** Largest file a job may send back, in bytes (0: no limit); default 10 MiB. */
  maxFileSize?: number;
  /** Most bytes of files one job may send back (0: no limit); default 100 MiB. */
  maxJobFilesSize?: number;
}

/** The options after validation, with defaults; `logLevel` is folded into `loglevel`. */
export type ResolvedClusterOptions = Omit<z.output<typeof clusterOptionsSchema>, 'logLevel'>;

/**
 * Python dispy's JobCluster options that this project names or does differently, with what to use
 * here (those that only change case, `ip_addr` → `ipAddr`, get the generic suggestion).
 */
const DISPY_OPTION_NAMES: Readonly<Record<string, string>> = {
  host: 'dispy\'s "host" (the older name of ip_addr) is "ipAddr" here',
  job_status: 'dispy\'s "job_status" is "callback" here (called with each job as its status changes)',
  poll_interval: 'not needed here: results are pushed to the client as jobs end, never polled',
};

/**
 * Validates options and applies defaults.
 * @throws OptionError naming each wrong option, its value and what is accepted
 */
export function resolveClusterOptions(options: object): ResolvedClusterOptions {
  const parsed = clusterOptionsSchema.safeParse(options);
  if (!parsed.success) {
    throw new OptionError(formatZodError(parsed.error, 'JobCluster', Object.keys(clusterOptionsSchema.shape), options, DISPY_OPTION_NAMES));
  }
  const { logLevel, ...resolved } = parsed.data;
  const given = (options as { loglevel?: unknown }).loglevel;
  if (logLevel !== undefined && given !== undefined && given !== logLevel) {
    throw new OptionError(
      `JobCluster: options "loglevel" (${JSON.stringify(given)}) and its alias "logLevel" (${logLevel}) differ; give one`,
    );
  }
  return { ...resolved, loglevel: logLevel ?? resolved.loglevel };
}
