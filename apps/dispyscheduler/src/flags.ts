import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { DispySchedulerOptions } from '@dispy/scheduler';

/** One row per flag: its spelling, the scheduler option it sets, how its text becomes a value, and its help. */
interface Flag {
  flag: string;
  short?: string;
  option?: keyof DispySchedulerOptions;
  kind: 'string' | 'integer' | 'number' | 'boolean' | 'list';
  arg?: string;
  help: string;
}

export const FLAGS: Flag[] = [
  {
    flag: 'nodes',
    short: 'n',
    option: 'nodes',
    kind: 'list',
    arg: 'HOST',
    help: 'a node for every computation: address, host name or pattern such as 192.168.1.*; repeatable (default *: broadcast)',
  },
  {
    flag: 'host',
    short: 'i',
    option: 'hosts',
    kind: 'list',
    arg: 'ADDR',
    help: 'local address, repeatable: the first serves clients and reaches nodes; discovery pings from each (default: every interface)',
  },
  {
    flag: 'ext-host',
    option: 'extHosts',
    kind: 'list',
    arg: 'ADDR',
    help: 'deprecated, no effect: clients connect to the address they are given, and the scheduler opens every connection to nodes',
  },
  {
    flag: 'ipv4-udp-multicast',
    option: 'ipv4UdpMulticast',
    kind: 'boolean',
    help: 'discover nodes by the IPv4 multicast group 239.255.61.59 instead of broadcast (nodes need --ipv4-udp-multicast)',
  },
  {
    flag: 'dispy-port',
    short: 'p',
    option: 'port',
    kind: 'integer',
    arg: 'PORT',
    help: 'UDP port toward the nodes, as a client (default 51347)',
  },
  { flag: 'node-port', option: 'nodePort', kind: 'integer', arg: 'PORT', help: "the nodes' port (default 51348)" },
  { flag: 'scheduler-port', option: 'schedulerPort', kind: 'integer', arg: 'PORT', help: 'TCP port for SharedJobClusters (default 51349)' },
  {
    flag: 'node-secret',
    option: 'nodeSecret',
    kind: 'string',
    arg: 'SECRET',
    help: 'secret shared with the nodes; visible in the process list: prefer DISPY_NODE_SECRET',
  },
  {
    flag: 'cluster-secret',
    option: 'clusterSecret',
    kind: 'string',
    arg: 'SECRET',
    help: 'secret SharedJobClusters must give; visible in the process list: prefer DISPY_CLUSTER_SECRET',
  },
  {
    flag: 'node-certfile',
    option: 'nodeCertfile',
    kind: 'string',
    arg: 'FILE',
    help: 'TLS toward nodes: certificate presented to nodes with --require-client-cert (alone, turns TLS toward nodes on)',
  },
  {
    flag: 'node-keyfile',
    option: 'nodeKeyfile',
    kind: 'string',
    arg: 'FILE',
    help: 'TLS toward nodes: key of --node-certfile (default: in --node-certfile)',
  },
  {
    flag: 'node-cafile',
    option: 'nodeCafile',
    kind: 'string',
    arg: 'FILE',
    help: "TLS toward nodes: CA that signed the nodes' certificates (turns TLS toward nodes on)",
  },
  {
    flag: 'node-cert-fingerprint',
    option: 'nodeCertFingerprint',
    kind: 'list',
    arg: 'SHA256',
    help: "TLS toward nodes: pinned SHA-256 fingerprint of a node's self-signed certificate; repeatable (turns TLS toward nodes on)",
  },
  {
    flag: 'cluster-certfile',
    option: 'clusterCertfile',
    kind: 'string',
    arg: 'FILE',
    help: 'TLS toward clients: certificate of this scheduler; the scheduler port then serves TLS only',
  },
  {
    flag: 'cluster-keyfile',
    option: 'clusterKeyfile',
    kind: 'string',
    arg: 'FILE',
    help: 'TLS toward clients: key of --cluster-certfile (default: in --cluster-certfile)',
  },
  {
    flag: 'cluster-cafile',
    option: 'clusterCafile',
    kind: 'string',
    arg: 'FILE',
    help: "TLS toward clients: CA that signed the clients' certificates (default: --cluster-certfile itself)",
  },
  {
    flag: 'require-client-cert',
    option: 'requireClientCert',
    kind: 'boolean',
    help: 'TLS toward clients: SharedJobClusters must present a certificate signed by --cluster-cafile',
  },
  {
    flag: 'pulse-interval',
    option: 'pulseInterval',
    kind: 'number',
    arg: 'SECONDS',
    help: "seconds between the nodes' pulses (default: none)",
  },
  { flag: 'ping-interval', option: 'pingInterval', kind: 'number', arg: 'SECONDS', help: 'seconds between discovery pings' },
  {
    flag: 'zombie-interval',
    option: 'zombieInterval',
    kind: 'number',
    arg: 'MINUTES',
    help: 'minutes the replies a client gone did not collect are kept for recoverJobs, on disk under --dest-path (default 60)',
  },
  {
    flag: 'client-grace',
    option: 'clientGrace',
    kind: 'number',
    arg: 'SECONDS',
    help: "seconds a client's computation goes on once its link is lost, for it to reconnect; then it is closed (default 60)",
  },
  {
    flag: 'msg-timeout',
    option: 'msgTimeout',
    kind: 'number',
    arg: 'SECONDS',
    help: 'seconds between heartbeats on client connections; a client silent for 4 of them is presumed dead (default 10)',
  },
  {
    flag: 'cleanup-nodes',
    option: 'cleanupNodes',
    kind: 'boolean',
    help: "nodes always remove a computation's files, whatever its cleanup says",
  },
  { flag: 'clean', option: 'clean', kind: 'boolean', help: "remove the scheduler's directory of files (--dest-path) at start" },
  {
    flag: 'dest-path',
    option: 'destPath',
    kind: 'string',
    arg: 'DIR',
    help: "directory of the clients' depends files and of the replies kept for clients gone (default: under the temp dir)",
  },
  {
    flag: 'max-file-size',
    option: 'maxFileSize',
    kind: 'integer',
    arg: 'BYTES',
    help: 'largest file a client may send through the scheduler (depends, sendFile), in bytes (0: no limit; default 10 MiB)',
  },
  {
    flag: 'cooperative',
    option: 'cooperative',
    kind: 'boolean',
    help: 'clients may change the CPUs their computation uses on shared nodes (setNodeCpus, NodeAllocate cpus)',
  },
  { flag: 'httpd', kind: 'boolean', help: 'the monitor page: not supported yet (refused)' },
  { flag: 'config', kind: 'string', arg: 'FILE', help: 'read options from a JSON file (flags given too win)' },
  { flag: 'save-config', kind: 'string', arg: 'FILE', help: 'write the options to a JSON file (without the secrets) and exit' },
  { flag: 'daemon', kind: 'boolean', help: 'do not read commands (status, quit) from stdin' },
  { flag: 'debug', short: 'd', kind: 'boolean', help: 'log debug messages' },
  { flag: 'help', short: 'h', kind: 'boolean', help: 'show this help' },
];

/** Flags that are refused until the monitor lands. */
const REFUSED: Record<string, string> = {
  httpd: 'the monitor page (@dispy/monitor) does not exist yet',
};

export interface CliSettings {
  options: DispySchedulerOptions;
  daemon: boolean;
  help: boolean;
  saveConfig?: string;
  warnings: string[];
}

/** Accepts dispy's underscore spellings (`--node_secret`) as well as kebab-case. */
function normalize(argv: string[]): string[] {
  return argv.map((arg) => {
    if (!arg.startsWith('--')) return arg;
    const [name, ...value] = arg.slice(2).split('=');
    return `--${name!.replaceAll('_', '-')}${value.length > 0 ? `=${value.join('=')}` : ''}`;
  });
}

/** Parses the command line (and the environment's secrets); throws naming the flag when one is wrong. */
export function parseFlags(argv: string[], env: NodeJS.ProcessEnv): CliSettings {
  const { values, positionals } = parseArgs({
    args: normalize(argv),
    allowPositionals: true,
    strict: true,
    options: Object.fromEntries(
      FLAGS.map((f) => [
        f.flag,
        { type: f.kind === 'boolean' ? 'boolean' : 'string', multiple: f.kind === 'list', ...(f.short ? { short: f.short } : {}) },
      ]),
    ),
  });
  if (positionals.length > 0) throw new Error(`unexpected argument ${JSON.stringify(positionals[0])}; see --help`);
  for (const [flag, why] of Object.entries(REFUSED)) if (values[flag] !== undefined) throw new Error(`--${flag}: ${why}`);
  const options: Record<string, unknown> = values.config ? readConfig(values.config as string) : {};
  for (const f of FLAGS) {
    const raw = values[f.flag];
    if (raw === undefined || !f.option) continue;
    if (f.kind === 'integer') {
      if (!/^\d+$/.test(raw as string)) throw new Error(`--${f.flag} must be an integer, got ${JSON.stringify(raw)}`);
      options[f.option] = Number(raw);
    } else if (f.kind === 'number') {
      if (!/^(\d+\.?\d*|\.\d+)$/.test(raw as string)) throw new Error(`--${f.flag} must be a number, got ${JSON.stringify(raw)}`);
      options[f.option] = Number(raw);
    } else {
      options[f.option] = raw;
    }
  }
  const warnings: string[] = [];
  for (const [flag, variable] of [
    ['node-secret', 'DISPY_NODE_SECRET'],
    ['cluster-secret', 'DISPY_CLUSTER_SECRET'],
  ] as const) {
    if (values[flag] !== undefined) {
      warnings.push(`--${flag} puts a secret on the command line, where every user of this machine can read it; set ${variable} instead`);
    }
  }
  options.nodeSecret ??= env.DISPY_NODE_SECRET;
  options.clusterSecret ??= env.DISPY_CLUSTER_SECRET;
  if (options.nodeSecret === undefined) delete options.nodeSecret;
  if (options.clusterSecret === undefined) delete options.clusterSecret;
  if (values.debug) options.loglevel = 'debug';
  return {
    options: options,
    daemon: values.daemon === true,
    help: values.help === true,
    saveConfig: values['save-config'] as string | undefined,
    warnings,
  };
}

function readConfig(file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`--config ${file}: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`--config ${file}: must hold a JSON object of options`);
  }
  return parsed as Record<string, unknown>;
}

/** Options that name files: saved as absolute paths, so that the config works from any directory. */
const PATH_OPTIONS = ['nodeKeyfile', 'nodeCertfile', 'nodeCafile', 'clusterKeyfile', 'clusterCertfile', 'clusterCafile'] as const;

/** Writes options for a later --config; the secrets are left out (pass them by environment), the TLS files are saved as their paths. */
export function saveConfig(file: string, options: DispySchedulerOptions): void {
  const { nodeSecret: _node, clusterSecret: _cluster, ...rest } = options;
  for (const option of PATH_OPTIONS) {
    const value = rest[option];
    if (typeof value === 'string') rest[option] = path.resolve(value);
  }
  writeFileSync(file, `${JSON.stringify(rest, null, 2)}\n`, { mode: 0o600 });
}

export function helpText(): string {
  const lines = FLAGS.map((f) => `  ${`${f.short ? `-${f.short}, ` : '    '}--${f.flag}${f.arg ? ` ${f.arg}` : ''}`.padEnd(32)} ${f.help}`);
  return [
    'Usage: dispyscheduler [options]',
    '',
    'Runs a shared dispy scheduler: it finds and manages the nodes, and runs the computations of',
    'SharedJobCluster programs on them side by side.',
    '',
    "Options (dispy's underscore spellings such as --node_secret are accepted too):",
    ...lines,
    '',
    'Secrets: DISPY_NODE_SECRET and DISPY_CLUSTER_SECRET. Without --daemon, type "status" or "quit" on stdin.',
    'SIGINT/SIGTERM stop it cleanly: the computations are closed and their running jobs terminated.',
  ].join('\n');
}
