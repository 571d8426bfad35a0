import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { NodeOptions } from '@dispy/node';
import { nodeOptionsSchema, parseSize } from '@dispy/node';

/** One row per flag: its spelling, the node option it sets, and how its text becomes a value. */
interface Flag {
  flag: string;
  short?: string;
  option?: keyof NodeOptions;
  kind: 'string' | 'integer' | 'number' | 'size' | 'boolean' | 'list';
  help?: string;
  arg?: string;
}

/** The flag table; descriptions come from the option schema unless the flag has its own. */
export const FLAGS: Flag[] = [
  { flag: 'cpus', short: 'c', option: 'cpus', kind: 'integer', arg: 'N' },
  { flag: 'host', short: 'i', option: 'hosts', kind: 'list', arg: 'ADDR' },
  { flag: 'dispy-port', short: 'p', option: 'port', kind: 'integer', arg: 'PORT' },
  { flag: 'name', option: 'name', kind: 'string', arg: 'NAME' },
  { flag: 'dest-path-prefix', option: 'destPathPrefix', kind: 'string', arg: 'DIR' },
  {
    flag: 'secret',
    short: 's',
    option: 'secret',
    kind: 'string',
    arg: 'SECRET',
    help: 'shared secret clients must prove; visible to every user in the process list: prefer DISPY_SECRET or --secret-file',
  },
  {
    flag: 'secret-file',
    kind: 'string',
    arg: 'FILE',
    help: 'read the shared secret from FILE (its first line); FILE must not be readable by group or others',
  },
  { flag: 'certfile', option: 'certfile', kind: 'string', arg: 'FILE' },
  { flag: 'keyfile', option: 'keyfile', kind: 'string', arg: 'FILE' },
  { flag: 'cafile', option: 'cafile', kind: 'string', arg: 'FILE' },
  { flag: 'require-client-cert', option: 'requireClientCert', kind: 'boolean' },
  { flag: 'ext-host', option: 'extHosts', kind: 'list', arg: 'ADDR' },
  { flag: 'ipv4-udp-multicast', option: 'ipv4UdpMulticast', kind: 'boolean' },
  { flag: 'serve', option: 'serve', kind: 'integer', arg: 'N' },
  { flag: 'max-clients', option: 'maxClients', kind: 'integer', arg: 'N' },
  { flag: 'service-start', option: 'serviceStart', kind: 'string', arg: 'HH:MM' },
  { flag: 'service-stop', option: 'serviceStop', kind: 'string', arg: 'HH:MM' },
  { flag: 'service-end', option: 'serviceEnd', kind: 'string', arg: 'HH:MM' },
  { flag: 'client-shutdown', option: 'clientShutdown', kind: 'boolean' },
  { flag: 'zombie-interval', option: 'zombieInterval', kind: 'number', arg: 'MINUTES' },
  { flag: 'heartbeat-interval', option: 'heartbeatInterval', kind: 'number', arg: 'SECONDS' },
  { flag: 'clean', option: 'clean', kind: 'boolean' },
  {
    flag: 'max-file-size',
    option: 'maxFileSize',
    kind: 'size',
    arg: 'SIZE',
    help: 'largest file transferred, e.g. 10m, 1g (0: no limit; default 10m)',
  },
  {
    flag: 'max-output-size',
    option: 'maxOutputSize',
    kind: 'size',
    arg: 'SIZE',
    help: "cap on each of a job's stdout, stderr and exception text, e.g. 1m, 200k; the rest is cut, with a marker (0: no cap; default 1m)",
  },
  { flag: 'scheduler-host', option: 'schedulerHost', kind: 'string', arg: 'HOST[:PORT]' },
  { flag: 'ping-interval', option: 'pingInterval', kind: 'number', arg: 'SECONDS' },
  { flag: 'config', kind: 'string', arg: 'FILE', help: 'read options from a JSON file (flags given too win)' },
  { flag: 'save-config', kind: 'string', arg: 'FILE', help: 'write the options to a JSON file (without the secret) and exit' },
  { flag: 'daemon', kind: 'boolean', help: 'do not read commands from stdin (status, cpus N, stop, start, release, quit)' },
  { flag: 'debug', short: 'd', kind: 'boolean', help: 'log debug messages' },
  { flag: 'help', short: 'h', kind: 'boolean', help: 'show this help' },
];

export interface CliSettings {
  options: NodeOptions;
  daemon: boolean;
  help: boolean;
  /** --save-config FILE: write the options there and exit. */
  saveConfig?: string;
  /** What the user should hear about the flags given (printed at start). */
  warnings: string[];
}

/** The warning printed when the secret is given on the command line. */
export const SECRET_ON_COMMAND_LINE =
  '-s/--secret puts the secret on the command line, where every user of this machine can read it (ps, /proc/PID/cmdline); ' +
  'pass it in the environment variable DISPY_SECRET or in a file with --secret-file FILE (mode 0600) instead';

/**
 * Reads the secret from `file`: its first line, without the line end.
 * @throws Error when the file is readable or writable by its group or others, empty, or unreadable
 */
export function readSecretFile(file: string): string {
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

/**
 * Accepts dispy's underscore spellings (`--dest_path_prefix`) as well as kebab-case, and a
 * negative number after an integer flag (`-c -1`), which parseArgs would take for a flag.
 */
function normalize(argv: string[]): string[] {
  const integerFlags = new Set(
    FLAGS.filter((f) => f.kind === 'integer' || f.kind === 'number').flatMap((f) => [`--${f.flag}`, ...(f.short ? [`-${f.short}`] : [])]),
  );
  const out: string[] = [];
  for (const arg of argv) {
    const previous = out[out.length - 1];
    if (/^-\d+$/.test(arg) && previous !== undefined && integerFlags.has(previous)) {
      out[out.length - 1] = `${previous.startsWith('--') ? previous : `--${FLAGS.find((f) => `-${f.short}` === previous)!.flag}`}=${arg}`;
      continue;
    }
    if (!arg.startsWith('--')) {
      out.push(arg);
      continue;
    }
    const [name, ...value] = arg.slice(2).split('=');
    out.push(`--${name!.replaceAll('_', '-')}${value.length > 0 ? `=${value.join('=')}` : ''}`);
  }
  return out;
}

/**
 * Python dispy's dispynode flags that this one does not have, with what to do instead: whether
 * each is coming, replaced (by what), or not needed here.
 */
export const DISPY_ONLY_FLAGS: Readonly<Record<string, string>> = {
  'admin-secret':
    "not supported yet (dispy's remote administration, dispyadmin, does not exist here): control the node from its stdin " +
    '(status, cpus N, stop, start, release, quit) or with signals',
  init:
    'not needed here: a computation brings what its jobs need (depends, setup); a module the node should offer every ' +
    'computation goes in node_modules beside the node',
  'msg-timeout': 'replaced by --heartbeat-interval SECONDS (a link silent for 4 intervals is presumed dead)',
  'force-cleanup': "not supported: each cluster's cleanup option decides; --clean at start removes what computations left",
  'unsafe-setup': 'not needed here: setup always runs in the worker processes, never in the node process',
};

/** The first dispy-only flag in `args` that this node does not have, as an error that says what to do instead. */
function dispyOnlyFlag(args: readonly string[]): Error | undefined {
  const known = new Set(FLAGS.map((f) => f.flag));
  for (const arg of args) {
    const name = /^--([^=]+)/.exec(arg)?.[1];
    if (name !== undefined && !known.has(name) && Object.hasOwn(DISPY_ONLY_FLAGS, name)) {
      return new Error(`--${name} is a flag of Python dispy's dispynode: ${DISPY_ONLY_FLAGS[name]}`);
    }
  }
  return undefined;
}

/** Parses the command line; throws with the flag and the value when one is wrong. */
export function parseFlags(argv: string[], env: NodeJS.ProcessEnv): CliSettings {
  const args = normalize(argv);
  const dispyOnly = dispyOnlyFlag(args);
  if (dispyOnly) throw dispyOnly;
  const { values, positionals } = parseKnown(args);
  if (positionals.length > 0) throw new Error(`unexpected argument ${JSON.stringify(positionals[0])}; see --help`);
  const options: Record<string, unknown> = values.config ? readConfig(values.config as string) : {};
  for (const f of FLAGS) {
    const raw = values[f.flag];
    if (raw === undefined || !f.option) continue;
    if (f.kind === 'integer') {
      if (!/^-?\d+$/.test(raw as string)) throw new Error(`--${f.flag} must be an integer, got ${JSON.stringify(raw)}`);
      options[f.option] = Number(raw);
    } else if (f.kind === 'number') {
      if (!/^-?(\d+\.?\d*|\.\d+)$/.test(raw as string)) throw new Error(`--${f.flag} must be a number, got ${JSON.stringify(raw)}`);
      options[f.option] = Number(raw);
    } else if (f.kind === 'size') {
      try {
        options[f.option] = parseSize(raw as string);
      } catch (error) {
        throw new Error(`--${f.flag}: ${(error as Error).message}`);
      }
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
  const secret = options.secret ?? env.DISPY_SECRET ?? env.DISPY_NODE_SECRET;
  if (secret !== undefined) options.secret = secret;
  if (values.debug) {
    // --debug wins over the config file's level, under either spelling.
    delete options.logLevel;
    options.loglevel = 'debug';
  }
  const saveConfig = values['save-config'] as string | undefined;
  return { options: options, daemon: values.daemon === true, help: values.help === true, saveConfig, warnings };
}

/** parseArgs over the flag table; an unknown flag is named, with the flag meant if one is close. */
function parseKnown(args: string[]) {
  try {
    return parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(
        FLAGS.map((f) => [
          f.flag,
          { type: f.kind === 'boolean' ? 'boolean' : 'string', multiple: f.kind === 'list', ...(f.short ? { short: f.short } : {}) },
        ]),
      ),
    });
  } catch (error) {
    const unknown =
      (error as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
        ? /'(-[^']*)'/.exec((error as Error).message)?.[1]
        : undefined;
    if (unknown === undefined) throw error;
    const meant = closeFlag(unknown.replace(/^-+/, ''));
    return fail(`unknown flag ${unknown}${meant ? `; did you mean --${meant}?` : ''}; see --help`);
  }
}

/** A flag of the table that `name` likely meant: the same without dashes, or one that `name` begins. */
function closeFlag(name: string): string | undefined {
  const bare = (text: string) => text.replaceAll('-', '').toLowerCase();
  return (
    FLAGS.find((f) => bare(f.flag) === bare(name))?.flag ??
    (name.length >= 3 ? FLAGS.find((f) => f.flag.startsWith(name) || name.startsWith(f.flag))?.flag : undefined)
  );
}

function fail(message: string): never {
  throw new Error(message);
}

/** Options from a --config file: a JSON object whose keys are the node options. */
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

/** Writes options for a later --config; the secret is left out (pass it by flag or env). */
export function saveConfig(file: string, options: NodeOptions): void {
  const { secret: _secret, ...rest } = options;
  writeFileSync(file, `${JSON.stringify(rest, null, 2)}\n`, { mode: 0o600 });
}

/** The --help text, built from the flag table and the option schema. */
export function helpText(): string {
  const shape = nodeOptionsSchema.shape as Record<string, { description?: string }>;
  const lines = FLAGS.map((f) => {
    const names = `${f.short ? `-${f.short}, ` : '    '}--${f.flag}${f.arg ? ` ${f.arg}` : ''}`;
    const text = f.help ?? (f.option ? unwrapDescription(shape[f.option]) : '') ?? '';
    return `  ${names.padEnd(30)} ${text}`;
  });
  return [
    'Usage: dispynode [options]',
    '',
    'Runs a dispy node: answers discovery from dispy clients on the network and runs the',
    'computations they send, one worker process per CPU.',
    '',
    "Options (dispy's underscore spellings such as --dest_path_prefix are accepted too):",
    ...lines,
    '',
    'Without --daemon, type "status", "cpus N" or "quit" on stdin. SIGINT/SIGTERM stop the node cleanly.',
  ].join('\n');
}

/** The description of a schema field, also through .optional(). */
function unwrapDescription(field: { description?: string; _def?: { innerType?: { description?: string } } } | undefined): string {
  return field?.description ?? field?._def?.innerType?.description ?? '';
}
