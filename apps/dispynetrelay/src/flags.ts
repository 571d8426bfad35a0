import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { DispyNetRelayOptions } from '@dispy/netrelay';

/** One row per flag: its spelling, the relay option it sets, how its text becomes a value, and its help. */
interface Flag {
  flag: string;
  short?: string;
  option?: keyof DispyNetRelayOptions;
  kind: 'string' | 'integer' | 'number' | 'boolean' | 'list';
  arg?: string;
  help: string;
}

export const FLAGS: Flag[] = [
  {
    flag: 'host',
    short: 'i',
    option: 'hosts',
    kind: 'list',
    arg: 'ADDR',
    help: "local address to serve on; its network's broadcast address is pinged; repeatable (default: every interface)",
  },
  {
    flag: 'ext-host',
    option: 'extHost',
    kind: 'string',
    arg: 'ADDR',
    help: 'address clients reach this relay at through NAT (told to them)',
  },
  {
    flag: 'dispy-port',
    short: 'p',
    option: 'nodePort',
    kind: 'integer',
    arg: 'PORT',
    help: "the nodes' port, pinged on this network (default 51348)",
  },
  {
    flag: 'relay-port',
    option: 'relayPort',
    kind: 'integer',
    arg: 'PORT',
    help: "UDP port where clients' pings are heard (default: --dispy-port; another one if a dispynode runs on this host)",
  },
  {
    flag: 'scheduler-node',
    option: 'schedulerNodes',
    kind: 'list',
    arg: 'HOST[:PORT]',
    help: 'client or dispyscheduler told of this relay at start and of every node that announces itself; repeatable',
  },
  {
    flag: 'scheduler-port',
    option: 'schedulerPort',
    kind: 'integer',
    arg: 'PORT',
    help: "UDP port of nodes' announcements and of --scheduler-node hosts (default 51347)",
  },
  {
    flag: 'nodes',
    short: 'n',
    option: 'nodes',
    kind: 'list',
    arg: 'HOST[:PORT]',
    help: 'a node pinged by address as well as by broadcast (networks without broadcast); repeatable',
  },
  {
    flag: 'client-ttl',
    option: 'clientTtl',
    kind: 'number',
    arg: 'SECONDS',
    help: 'how long a client, and a node that announced itself, is remembered after it was last heard (default 600)',
  },
  {
    flag: 'secret',
    short: 's',
    option: 'secret',
    kind: 'string',
    arg: 'SECRET',
    help: "the clients' and nodes' secret; visible in the process list: prefer DISPY_SECRET or --secret-file",
  },
  { flag: 'secret-file', kind: 'string', arg: 'FILE', help: 'read the secret from the first line of FILE (mode 0600)' },
  { flag: 'config', kind: 'string', arg: 'FILE', help: 'read options from a JSON file (flags given too win)' },
  { flag: 'save-config', kind: 'string', arg: 'FILE', help: 'write the options to a JSON file (without the secret) and exit' },
  { flag: 'daemon', kind: 'boolean', help: 'do not read commands (status, quit) from stdin' },
  { flag: 'debug', short: 'd', kind: 'boolean', help: 'log debug messages' },
  { flag: 'help', short: 'h', kind: 'boolean', help: 'show this help' },
];

export interface CliSettings {
  options: DispyNetRelayOptions;
  daemon: boolean;
  help: boolean;
  saveConfig?: string;
  warnings: string[];
}

/** The warning printed when the secret is given on the command line. */
export const SECRET_ON_COMMAND_LINE =
  '-s/--secret puts the secret on the command line, where every user of this machine can read it (ps, /proc/PID/cmdline); ' +
  'pass it in the environment variable DISPY_SECRET or in a file with --secret-file FILE (mode 0600) instead';

/** Accepts dispy's underscore spellings (`--scheduler_node`) as well as kebab-case. */
function normalize(argv: string[]): string[] {
  return argv.map((arg) => {
    if (!arg.startsWith('--')) return arg;
    const [name, ...value] = arg.slice(2).split('=');
    return `--${name!.replaceAll('_', '-')}${value.length > 0 ? `=${value.join('=')}` : ''}`;
  });
}

/** Parses the command line (and DISPY_SECRET); throws naming the flag when one is wrong. */
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
  const secretFile = values['secret-file'] as string | undefined;
  if (values.secret !== undefined) {
    if (secretFile !== undefined) throw new Error('give the secret once: -s/--secret or --secret-file, not both');
    warnings.push(SECRET_ON_COMMAND_LINE);
  }
  if (secretFile !== undefined) options.secret = readSecretFile(secretFile);
  const secret = options.secret ?? env.DISPY_SECRET;
  if (secret !== undefined) options.secret = secret;
  if (values.debug) options.loglevel = 'debug';
  return {
    options: options,
    daemon: values.daemon === true,
    help: values.help === true,
    saveConfig: values['save-config'] as string | undefined,
    warnings,
  };
}

/**
 * The secret from `file`: its first line, without the line end.
 * @throws Error when the file is readable or writable by its group or others, empty, or unreadable
 */
function readSecretFile(file: string): string {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (error) {
    throw new Error(`--secret-file ${file}: ${(error as Error).message}`);
  }
  if (mode & 0o077) {
    throw new Error(
      `--secret-file ${file} may be read or changed by its group or others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); ` +
        `make it private: chmod 600 ${file}`,
    );
  }
  const secret = readFileSync(file, 'utf8').split(/\r?\n/)[0] ?? '';
  if (!secret) throw new Error(`--secret-file ${file}: its first line is empty`);
  return secret;
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

/** Writes options for a later --config; the secret is left out (pass it by environment or --secret-file). */
export function saveConfig(file: string, options: DispyNetRelayOptions): void {
  const { secret: _secret, ...rest } = options;
  writeFileSync(file, `${JSON.stringify(rest, null, 2)}\n`, { mode: 0o600 });
}

export function helpText(): string {
  const lines = FLAGS.map((f) => `  ${`${f.short ? `-${f.short}, ` : '    '}--${f.flag}${f.arg ? ` ${f.arg}` : ''}`.padEnd(34)} ${f.help}`);
  return [
    'Usage: dispynetrelay [options]',
    '',
    'Relays dispy discovery to the nodes on this network, for clients and dispyschedulers on other',
    'networks: they list this host in their nodes (and a pattern for the nodes here); the relay passes',
    "their authenticated pings on to this network and the nodes' answers back. The clients then connect",
    'to the nodes directly over TCP, so the nodes must be reachable from them.',
    '',
    "Options (dispy's underscore spellings such as --scheduler_node are accepted too):",
    ...lines,
    '',
    'Secret: DISPY_SECRET (or --secret-file). Without --daemon, type "status" or "quit" on stdin.',
    'SIGINT/SIGTERM stop it cleanly.',
  ].join('\n');
}
