import { readFileSync, writeFileSync } from 'node:fs';
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
    help: 'local address to serve clients and reach nodes from (first one)',
  },
  {
    flag: 'ext-host',
    option: 'extHosts',
    kind: 'list',
    arg: 'ADDR',
    help: 'address of this host as seen through NAT (informational for now)',
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
  { flag: 'node-keyfile', kind: 'string', arg: 'FILE', help: 'TLS toward nodes: not supported yet (refused)' },
  { flag: 'node-certfile', kind: 'string', arg: 'FILE', help: 'TLS toward nodes: not supported yet (refused)' },
  { flag: 'cluster-keyfile', kind: 'string', arg: 'FILE', help: 'TLS toward clients: not supported yet (refused)' },
  { flag: 'cluster-certfile', kind: 'string', arg: 'FILE', help: 'TLS toward clients: not supported yet (refused)' },
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
    flag: 'cooperative',
    option: 'cooperative',
    kind: 'boolean',
    help: "accepted for dispy's sake; clients cannot change shared nodes' CPUs yet",
  },
  { flag: 'httpd', kind: 'boolean', help: 'the monitor page: not supported yet (refused)' },
  { flag: 'config', kind: 'string', arg: 'FILE', help: 'read options from a JSON file (flags given too win)' },
  { flag: 'save-config', kind: 'string', arg: 'FILE', help: 'write the options to a JSON file (without the secrets) and exit' },
  { flag: 'daemon', kind: 'boolean', help: 'do not read commands (status, quit) from stdin' },
  { flag: 'debug', short: 'd', kind: 'boolean', help: 'log debug messages' },
  { flag: 'help', short: 'h', kind: 'boolean', help: 'show this help' },
];

/** Flags that are refused until the security issue (TLS) and the monitor land. */
const REFUSED: Record<string, string> = {
  'node-keyfile': 'TLS toward nodes is not supported by dispyscheduler yet; use --node-secret',
  'node-certfile': 'TLS toward nodes is not supported by dispyscheduler yet; use --node-secret',
  'cluster-keyfile': 'TLS toward clients is not supported by dispyscheduler yet; use --cluster-secret',
  'cluster-certfile': 'TLS toward clients is not supported by dispyscheduler yet; use --cluster-secret',
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

/** Writes options for a later --config; the secrets are left out (pass them by environment). */
export function saveConfig(file: string, options: DispySchedulerOptions): void {
  const { nodeSecret: _node, clusterSecret: _cluster, ...rest } = options;
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
