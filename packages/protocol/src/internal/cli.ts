/**
 * The command-line machinery of the dispy apps (dispynode, dispyscheduler, dispynetrelay): the flag
 * table → parseArgs, dispy's underscore spellings, negative numbers after numeric flags, --config and
 * --save-config JSON files, secrets (flag with a warning, private file, environment), Python dispy's
 * flags that an app does not have (with what to do instead), unknown flags with the one likely meant,
 * the --help text, and the run of the app itself (exit codes, signals, stdin commands). Each app keeps
 * only its own flag table, its checks and its commands.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { DispyError } from '../errors/dispy-error.js';
import { ErrorCode } from '../errors/error-codes.js';

/** One row per flag: its spelling, the option it sets, how its text becomes a value, and its help. */
export interface CliFlag<O> {
  flag: string;
  short?: string;
  option?: keyof O & string;
  kind: 'string' | 'integer' | 'number' | 'boolean' | 'list';
  arg?: string;
  help: string;
  /** Turns the flag's text into the option's value (a size such as 10m); throws with the reason. */
  parse?: (text: string) => unknown;
  /** The flag is known but refused, for this reason (a feature that does not exist yet). */
  refused?: string;
  /** The flag gives a secret: the environment variables that give it too (first wins), and the flag of its file. */
  secret?: { env: readonly string[]; file?: string };
}

/** What an app tells the machinery about its command line. */
export interface CliSpec<O> {
  /** The program's name: dispynode, dispyscheduler, dispynetrelay. */
  app: string;
  /** The app's own flags (--config, --save-config, --daemon, --debug and --help are added after them). */
  flags: readonly CliFlag<O>[];
  /** Python dispy's flags of this program that this one does not have, with what to do instead. */
  dispyOnly: Readonly<Record<string, string>>;
  /** The stdin commands, as listed in --help of --daemon and after an unknown command. */
  commands: string;
  /** Integer and number flags take negative values (dispynode's `-c -1`: all CPUs but one). */
  negativeNumbers?: boolean;
  /** Options naming files: --save-config writes them as absolute paths, so that the config works from any directory. */
  pathOptions?: readonly (keyof O & string)[];
  /** --help: the lines after the usage line, an example of an underscore spelling, the lines after the flags, and the column of the flags' help. */
  help: { intro: readonly string[]; underscoreExample: string; footer: readonly string[]; column: number };
}

export interface CliSettings<O> {
  options: O;
  daemon: boolean;
  help: boolean;
  /** --save-config FILE: write the options there and exit. */
  saveConfig?: string;
  /** What the user should hear about the flags given (printed at start). */
  warnings: string[];
}

function usage(message: string, cause?: unknown): DispyError {
  return new DispyError(ErrorCode.OPTION, message, cause === undefined ? undefined : { cause });
}

/** The flags every app has, after its own. */
function commonFlags<O>(spec: CliSpec<O>): CliFlag<O>[] {
  const secrets = spec.flags.filter((f) => f.secret).length;
  return [
    { flag: 'config', kind: 'string', arg: 'FILE', help: 'read options from a JSON file (flags given too win)' },
    {
      flag: 'save-config',
      kind: 'string',
      arg: 'FILE',
      help: `write the options to a JSON file (without the secret${secrets > 1 ? 's' : ''}) and exit`,
    },
    { flag: 'daemon', kind: 'boolean', help: `do not read commands (${spec.commands}) from stdin` },
    { flag: 'debug', short: 'd', kind: 'boolean', help: 'log debug messages' },
    { flag: 'help', short: 'h', kind: 'boolean', help: 'show this help' },
  ];
}

/** Every flag of the app: its own, then the common ones. */
export function cliFlags<O>(spec: CliSpec<O>): CliFlag<O>[] {
  return [...spec.flags, ...commonFlags(spec)];
}

/** The rows of a secret flag and of its file flag, to place in an app's table. */
export function secretFlags<O>(secret: {
  flag: string;
  short?: string;
  option: keyof O & string;
  env: readonly string[];
  file: string;
  what: string;
}): CliFlag<O>[] {
  const preferred = secret.env[0] ?? '';
  return [
    {
      flag: secret.flag,
      ...(secret.short ? { short: secret.short } : {}),
      option: secret.option,
      kind: 'string',
      arg: 'SECRET',
      help: `${secret.what}; visible to every user in the process list: prefer ${preferred} or --${secret.file}`,
      secret: { env: secret.env, file: secret.file },
    },
    {
      flag: secret.file,
      kind: 'string',
      arg: 'FILE',
      help: `read the ${secret.flag.replaceAll('-', ' ')} from FILE (its first line); FILE must not be readable by group or others`,
    },
  ];
}

function flagNames(f: { flag: string; short?: string }): string {
  return `${f.short ? `-${f.short}/` : ''}--${f.flag}`;
}

/** The warning printed when a secret is given on the command line. */
export function secretWarning(f: Pick<CliFlag<unknown>, 'flag' | 'short' | 'secret'>): string {
  const env = f.secret?.env[0];
  const instead = [
    env ? `in the environment variable ${env}` : '',
    f.secret?.file ? `in a file with --${f.secret.file} FILE (mode 0600)` : '',
  ]
    .filter(Boolean)
    .join(' or ');
  return (
    `${flagNames(f)} puts the secret on the command line, where every user of this machine can read it (ps, /proc/PID/cmdline)` +
    (instead ? `; pass it ${instead} instead` : '')
  );
}

/**
 * Reads a secret from `file`: its first line, without the line end.
 * @throws DispyError when the file is readable or writable by its group or others, empty, or unreadable
 */
export function readSecretFile(file: string, flag = 'secret-file'): string {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (error) {
    throw usage(`--${flag} ${file}: ${(error as Error).message}`, error);
  }
  if (mode & 0o077) {
    throw usage(
      `--${flag} ${file} may be read or changed by its group or others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); ` +
        `make it private: chmod 600 ${file}`,
    );
  }
  const secret = readFileSync(file, 'utf8').split(/\r?\n/)[0] ?? '';
  if (!secret) throw usage(`--${flag} ${file}: its first line is empty`);
  return secret;
}

/**
 * Accepts dispy's underscore spellings (`--dest_path_prefix`) as well as kebab-case, and a negative
 * number after a numeric flag (`-c -1`), which parseArgs would take for a flag.
 */
function normalize<O>(flags: readonly CliFlag<O>[], argv: readonly string[]): string[] {
  const numeric = new Map<string, string>();
  for (const f of flags) {
    if (f.kind !== 'integer' && f.kind !== 'number') continue;
    numeric.set(`--${f.flag}`, f.flag);
    if (f.short) numeric.set(`-${f.short}`, f.flag);
  }
  const out: string[] = [];
  for (const arg of argv) {
    const previous = out[out.length - 1];
    const numericFlag = previous === undefined ? undefined : numeric.get(previous);
    if (/^-\d+(\.\d*)?$/.test(arg) && numericFlag !== undefined) {
      out[out.length - 1] = `--${numericFlag}=${arg}`;
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

/** The first of Python dispy's flags in `args` that this app does not have, as an error that says what to do instead. */
function dispyOnlyFlag<O>(spec: CliSpec<O>, flags: readonly CliFlag<O>[], args: readonly string[]): DispyError | undefined {
  const known = new Set(flags.map((f) => f.flag));
  for (const arg of args) {
    const name = /^--([^=]+)/.exec(arg)?.[1];
    if (name !== undefined && !known.has(name) && Object.hasOwn(spec.dispyOnly, name)) {
      return usage(`--${name} is a flag of Python dispy's ${spec.app}: ${spec.dispyOnly[name]}`);
    }
  }
  return undefined;
}

/** parseArgs over the flag table; an unknown flag is named, with the flag meant if one is close. */
function parseKnown<O>(flags: readonly CliFlag<O>[], args: string[]) {
  try {
    return parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(
        flags.map((f) => [
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
    if (unknown === undefined) throw usage((error as Error).message, error);
    const meant = closeFlag(flags, unknown.replace(/^-+/, ''));
    throw usage(`unknown flag ${unknown}${meant ? `; did you mean --${meant}?` : ''}; see --help`);
  }
}

/** A flag of the table that `name` likely meant: the same without dashes, or one that `name` begins. */
function closeFlag<O>(flags: readonly CliFlag<O>[], name: string): string | undefined {
  const bare = (text: string) => text.replaceAll('-', '').toLowerCase();
  return (
    flags.find((f) => bare(f.flag) === bare(name))?.flag ??
    (name.length >= 3 ? flags.find((f) => f.flag.startsWith(name) || name.startsWith(f.flag))?.flag : undefined)
  );
}

/** Options from a --config file: a JSON object whose keys are the app's options. */
function readConfig(file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw usage(`--config ${file}: ${(error as Error).message}`, error);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw usage(`--config ${file}: must hold a JSON object of options`);
  }
  return parsed as Record<string, unknown>;
}

/**
 * Parses the command line (and the secrets of the environment); throws a DispyError naming the flag
 * and the value when one is wrong.
 */
export function parseCli<O>(spec: CliSpec<O>, argv: readonly string[], env: NodeJS.ProcessEnv): CliSettings<O> {
  const flags = cliFlags(spec);
  const args = normalize(flags, argv);
  const dispyOnly = dispyOnlyFlag(spec, flags, args);
  if (dispyOnly) throw dispyOnly;
  const { values, positionals } = parseKnown(flags, args);
  if (positionals.length > 0) throw usage(`unexpected argument ${JSON.stringify(positionals[0])}; see --help`);
  for (const f of flags) if (f.refused !== undefined && values[f.flag] !== undefined) throw usage(`--${f.flag}: ${f.refused}`);
  const options: Record<string, unknown> = values.config ? readConfig(values.config as string) : {};
  const sign = spec.negativeNumbers ? '-?' : '';
  for (const f of flags) {
    const raw = values[f.flag];
    if (raw === undefined || !f.option) continue;
    if (f.kind === 'integer') {
      if (!new RegExp(`^${sign}\\d+$`).test(raw as string)) throw usage(`--${f.flag} must be an integer, got ${JSON.stringify(raw)}`);
      options[f.option] = Number(raw);
    } else if (f.kind === 'number') {
      if (!new RegExp(`^${sign}(\\d+\\.?\\d*|\\.\\d+)$`).test(raw as string)) {
        throw usage(`--${f.flag} must be a number, got ${JSON.stringify(raw)}`);
      }
      options[f.option] = Number(raw);
    } else if (f.parse) {
      try {
        options[f.option] = f.parse(raw as string);
      } catch (error) {
        throw usage(`--${f.flag}: ${(error as Error).message}`, error);
      }
    } else {
      options[f.option] = raw;
    }
  }
  const warnings: string[] = [];
  for (const f of flags) {
    if (!f.secret || !f.option) continue;
    const file = f.secret.file === undefined ? undefined : (values[f.secret.file] as string | undefined);
    if (values[f.flag] !== undefined) {
      if (file !== undefined) throw usage(`give the secret once: ${flagNames(f)} or --${f.secret.file}, not both`);
      warnings.push(secretWarning(f));
    }
    if (file !== undefined) options[f.option] = readSecretFile(file, f.secret.file);
    const secret = options[f.option] ?? f.secret.env.map((name) => env[name]).find((value) => value !== undefined);
    if (secret === undefined) delete options[f.option];
    else options[f.option] = secret;
  }
  if (values.debug) {
    // --debug wins over the config file's level, under either spelling.
    delete options.logLevel;
    options.loglevel = 'debug';
  }
  return {
    options: options as O,
    daemon: values.daemon === true,
    help: values.help === true,
    saveConfig: values['save-config'] as string | undefined,
    warnings,
  };
}

/** Writes options for a later --config; the secrets are left out (pass them by environment or file), files as absolute paths. */
export function saveCliConfig<O>(spec: CliSpec<O>, file: string, options: O): void {
  const rest = { ...options } as Record<string, unknown>;
  for (const f of spec.flags) if (f.secret && f.option) delete rest[f.option];
  for (const option of spec.pathOptions ?? []) {
    const value = rest[option];
    if (typeof value === 'string') rest[option] = path.resolve(value);
  }
  writeFileSync(file, `${JSON.stringify(rest, null, 2)}\n`, { mode: 0o600 });
}

/** The --help text, built from the flag table. */
export function cliHelp<O>(spec: CliSpec<O>): string {
  const lines = cliFlags(spec).map((f) => {
    const names = `${f.short ? `-${f.short}, ` : '    '}--${f.flag}${f.arg ? ` ${f.arg}` : ''}`;
    return `  ${names.padEnd(spec.help.column)} ${f.help}`;
  });
  return [
    `Usage: ${spec.app} [options]`,
    '',
    ...spec.help.intro,
    '',
    `Options (dispy's underscore spellings such as ${spec.help.underscoreExample} are accepted too):`,
    ...lines,
    '',
    ...spec.help.footer,
  ].join('\n');
}

/** What the run of an app needs of its server (node, scheduler, relay). */
export interface CliServer {
  readonly logger: { info(message: string): void };
  start(): Promise<unknown>;
  close(): Promise<unknown>;
  status(): unknown;
}

/** An app: its command line, how it makes its server, and its own stdin commands. */
export interface CliApp<O, S extends CliServer> {
  spec: CliSpec<O>;
  /** Makes the server; throws when the options are wrong (also used to check them before --save-config). */
  create(options: O): S;
  /** Settles when the server stopped by itself (dispynode's --serve): the app then exits. */
  finished?(server: S): Promise<unknown>;
  /** Handles one of the app's own stdin commands (beyond status, quit and exit); false when `word` is none. */
  command?(server: S, word: string, argument: string | undefined, print: (text: string) => void): boolean;
}

/**
 * Runs an app as its bin does: parses the flags (exit code 2 when they are wrong), prints --help or
 * writes --save-config, else starts the server (exit code 1 when it cannot), stops it cleanly on
 * SIGINT/SIGTERM, on `quit` or `exit` on stdin, or when it finished by itself, and answers the
 * commands typed on stdin (unless --daemon): `status` (or an empty line) prints the status,
 * anything unknown the status and the list of commands.
 */
export function runCli<O, S extends CliServer>(
  app: CliApp<O, S>,
  argv: readonly string[] = process.argv.slice(2),
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const complain = (error: unknown, code: number) => {
    process.stderr.write(`${app.spec.app}: ${(error as Error)?.message ?? String(error)}\n`);
    process.exitCode = code;
  };
  return run(app, argv, env, complain).catch((error: unknown) => complain(error, 1));
}

async function run<O, S extends CliServer>(
  app: CliApp<O, S>,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  complain: (error: unknown, code: number) => void,
): Promise<void> {
  const { spec } = app;
  let settings: CliSettings<O>;
  try {
    settings = parseCli(spec, argv, env);
  } catch (error) {
    return complain(error, 2);
  }
  for (const warning of settings.warnings) process.stderr.write(`${spec.app}: warning: ${warning}\n`);
  // The app needs its secrets no more in its environment (nor do the processes it starts).
  for (const f of spec.flags) for (const name of f.secret?.env ?? []) delete env[name];
  if (settings.help) {
    process.stdout.write(`${cliHelp(spec)}\n`);
    return;
  }
  if (settings.saveConfig) {
    try {
      app.create(settings.options); // validates before anything is written
      saveCliConfig(spec, settings.saveConfig, settings.options);
    } catch (error) {
      complain(error, 1);
    }
    return;
  }
  let server: S;
  try {
    server = app.create(settings.options);
    await server.start();
  } catch (error) {
    return complain(error, 1);
  }

  let stopping: Promise<void> | undefined;
  const stop = (why: string) => {
    stopping ??= (async () => {
      server.logger.info(`${why}: stopping`);
      try {
        await server.close();
      } catch (error) {
        complain(error, 1);
      }
      process.exit(process.exitCode ?? 0);
    })();
    return stopping;
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  app.finished?.(server).then(
    () => stop('done'),
    (error: unknown) => {
      complain(error, 1);
      return stop('failed');
    },
  );

  if (!settings.daemon) {
    const print = (text: string) => process.stdout.write(`${text}\n`);
    const commands = createInterface({ input: process.stdin });
    commands.on('line', (line) => {
      const [word = '', argument] = line.trim().split(/\s+/);
      if (word === 'quit' || word === 'exit') void stop(word);
      else if (word === 'status' || word === '') print(JSON.stringify(server.status(), null, 2));
      else if (!app.command?.(server, word, argument, print)) {
        // As dispy does, anything else prints the status (with the commands, for the unsure).
        print(JSON.stringify(server.status(), null, 2));
        print(`commands: ${spec.commands}`);
      }
    });
  }
}

/** An app's flags and the functions over its spec, under the names its flags module exports. */
export function cliModule<O>(spec: CliSpec<O>) {
  return {
    /** Every flag, the common ones (--config, --daemon, ...) included. */
    FLAGS: cliFlags(spec),
    /** Parses the command line (and the environment's secrets); throws a DispyError naming the flag when one is wrong. */
    parseFlags: (argv: readonly string[], env: NodeJS.ProcessEnv): CliSettings<O> => parseCli(spec, argv, env),
    /** Writes options for a later --config, without the secrets. */
    saveConfig: (file: string, options: O): void => saveCliConfig(spec, file, options),
    /** The --help text. */
    helpText: (): string => cliHelp(spec),
  };
}
