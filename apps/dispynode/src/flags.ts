import { parseArgs } from 'node:util';
import type { NodeOptions } from '@dispy/node';
import { nodeOptionsSchema } from '@dispy/node';

/** One row per flag: its spelling, the node option it sets, and how its text becomes a value. */
interface Flag {
  flag: string;
  short?: string;
  option?: keyof NodeOptions;
  kind: 'string' | 'integer' | 'boolean' | 'list';
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
  { flag: 'secret', short: 's', option: 'secret', kind: 'string', arg: 'SECRET', help: 'shared secret clients must prove (also DISPY_SECRET or DISPY_NODE_SECRET)' },
  { flag: 'daemon', kind: 'boolean', help: 'do not read commands (status, quit) from stdin' },
  { flag: 'debug', short: 'd', kind: 'boolean', help: 'log debug messages' },
  { flag: 'help', short: 'h', kind: 'boolean', help: 'show this help' },
];

export interface CliSettings {
  options: NodeOptions;
  daemon: boolean;
  help: boolean;
}

/**
 * Accepts dispy's underscore spellings (`--dest_path_prefix`) as well as kebab-case, and a
 * negative number after an integer flag (`-c -1`), which parseArgs would take for a flag.
 */
function normalize(argv: string[]): string[] {
  const integerFlags = new Set(FLAGS.filter((f) => f.kind === 'integer').flatMap((f) => [`--${f.flag}`, ...(f.short ? [`-${f.short}`] : [])]));
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

/** Parses the command line; throws with the flag and the value when one is wrong. */
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
  const options: Record<string, unknown> = {};
  for (const f of FLAGS) {
    const raw = values[f.flag];
    if (raw === undefined || !f.option) continue;
    if (f.kind === 'integer') {
      if (!/^-?\d+$/.test(raw as string)) throw new Error(`--${f.flag} must be an integer, got ${JSON.stringify(raw)}`);
      options[f.option] = Number(raw);
    } else {
      options[f.option] = raw;
    }
  }
  const secret = options.secret ?? env.DISPY_SECRET ?? env.DISPY_NODE_SECRET;
  if (secret !== undefined) options.secret = secret;
  options.logLevel = values.debug ? 'debug' : 'info';
  return { options: options as NodeOptions, daemon: values.daemon === true, help: values.help === true };
}

/** The --help text, built from the flag table and the option schema. */
export function helpText(): string {
  const shape = nodeOptionsSchema.shape as Record<string, { description?: string }>;
  const lines = FLAGS.map((f) => {
    const names = `${f.short ? `-${f.short}, ` : '    '}--${f.flag}${f.arg ? ` ${f.arg}` : ''}`;
    const text = f.help ?? (f.option ? shape[f.option]?.description : '') ?? '';
    return `  ${names.padEnd(30)} ${text}`;
  });
  return [
    'Usage: dispynode [options]',
    '',
    'Runs a dispy node: answers discovery from dispy clients on the network and runs the',
    'computations they send, one worker process per CPU.',
    '',
    'Options (dispy\'s underscore spellings such as --dest_path_prefix are accepted too):',
    ...lines,
    '',
    'Without --daemon, type "status" or "quit" on stdin. SIGINT/SIGTERM stop the node cleanly.',
  ].join('\n');
}
