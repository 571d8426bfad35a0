import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DispyError } from '../errors/dispy-error.js';
import { ErrorCode } from '../errors/error-codes.js';
import { cliHelp, parseCli, runCli, saveCliConfig, secretFlags, secretWarning, type CliServer, type CliSpec } from './cli.js';

interface Options {
  count?: number;
  ratio?: number;
  hosts?: string[];
  size?: number;
  dir?: string;
  certfile?: string;
  secret?: string;
  otherSecret?: string;
  verbose?: boolean;
  loglevel?: string;
  logLevel?: string;
}

const SPEC: CliSpec<Options> = {
  app: 'dispytool',
  flags: [
    { flag: 'count', short: 'c', option: 'count', kind: 'integer', arg: 'N', help: 'how many' },
    { flag: 'ratio', option: 'ratio', kind: 'number', arg: 'X', help: 'how much' },
    { flag: 'host', short: 'i', option: 'hosts', kind: 'list', arg: 'ADDR', help: 'where' },
    {
      flag: 'max-size',
      option: 'size',
      kind: 'string',
      arg: 'SIZE',
      help: 'how large',
      parse: (text) => {
        if (!/^\d+k$/.test(text)) throw new Error(`not a size: ${JSON.stringify(text)}`);
        return Number(text.slice(0, -1)) * 1024;
      },
    },
    { flag: 'dest-path', option: 'dir', kind: 'string', arg: 'DIR', help: 'a directory' },
    { flag: 'certfile', option: 'certfile', kind: 'string', arg: 'FILE', help: 'a certificate' },
    { flag: 'verbose', option: 'verbose', kind: 'boolean', help: 'say more' },
    { flag: 'monitor', kind: 'boolean', help: 'not yet', refused: 'the monitor does not exist yet' },
    ...secretFlags<Options>({
      flag: 'secret',
      short: 's',
      option: 'secret',
      env: ['DISPY_SECRET', 'DISPY_OLD'],
      file: 'secret-file',
      what: 'the secret',
    }),
    ...secretFlags<Options>({
      flag: 'other-secret',
      option: 'otherSecret',
      env: ['DISPY_OTHER'],
      file: 'other-secret-file',
      what: 'another',
    }),
  ],
  dispyOnly: { 'old-flag': 'replaced by --count N' },
  commands: 'status, quit',
  pathOptions: ['certfile'],
  help: { intro: ['Does things.'], underscoreExample: '--dest_path', footer: ['The end.'], column: 28 },
};

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  vi.restoreAllMocks();
  process.exitCode = undefined;
});
function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-cli-'));
  dirs.push(dir);
  return dir;
}
function parse(argv: string[], env: NodeJS.ProcessEnv = {}) {
  return parseCli(SPEC, argv, env);
}
/** The message of the error parsing `argv` throws, which must be a DispyError of ErrorCode.OPTION. */
function failure(argv: string[], spec: CliSpec<Options> = SPEC): string {
  try {
    parseCli(spec, argv, {});
  } catch (error) {
    expect(DispyError.isInstance(error) && error.code === ErrorCode.OPTION).toBe(true);
    return (error as Error).message;
  }
  return 'accepted';
}

describe('parseCli', () => {
  it("takes the table's flags into options, in dispy's underscore spellings too, with the common flags", () => {
    const settings = parse([
      '-c',
      '3',
      '--ratio=0.5',
      '-i',
      'a',
      '--host',
      'b',
      '--max_size',
      '2k',
      '--dest_path=/x',
      '--verbose',
      '--daemon',
    ]);
    expect(settings).toEqual({
      options: { count: 3, ratio: 0.5, hosts: ['a', 'b'], size: 2048, dir: '/x', verbose: true },
      daemon: true,
      help: false,
      saveConfig: undefined,
      warnings: [],
    });
    expect(parse(['-h', '--save-config', 'f.json'])).toMatchObject({ help: true, saveConfig: 'f.json' });
  });

  it('takes a negative number after a numeric flag only where the app allows it, and names the flag otherwise', () => {
    expect(parseCli({ ...SPEC, negativeNumbers: true }, ['-c', '-1', '--ratio', '-2.5'], {}).options).toEqual({ count: -1, ratio: -2.5 });
    expect(failure(['-c', '-1'])).toBe('--count must be an integer, got "-1"');
    expect(failure(['--ratio', '-1'])).toBe('--ratio must be a number, got "-1"');
    expect(failure(['--count', 'x'])).toBe('--count must be an integer, got "x"');
    expect(failure(['--max-size', '2q'])).toBe('--max-size: not a size: "2q"');
  });

  it("says what to do instead of Python dispy's flags, refuses what is not there yet, and names unknown flags with the one meant", () => {
    expect(failure(['--old_flag', '1'])).toBe("--old-flag is a flag of Python dispy's dispytool: replaced by --count N");
    expect(failure(['--monitor'])).toBe('--monitor: the monitor does not exist yet');
    expect(failure(['--cont', '1'])).toBe('unknown flag --cont; see --help');
    expect(failure(['--coun', '1'])).toBe('unknown flag --coun; did you mean --count?; see --help');
    expect(failure(['--destpath', '/x'])).toBe('unknown flag --destpath; did you mean --dest-path?; see --help');
    expect(failure(['-x'])).toBe('unknown flag -x; see --help');
    expect(failure(['stray'])).toBe('unexpected argument "stray"; see --help');
    expect(failure(['--count'])).toMatch(/--count/);
  });

  it('takes each secret from its flag (with a warning), its private file, or the environment in order, once', () => {
    expect(parse([], { DISPY_OLD: 'old', DISPY_OTHER: 'other' }).options).toEqual({ secret: 'old', otherSecret: 'other' });
    expect(parse([], { DISPY_SECRET: 'new', DISPY_OLD: 'old' }).options).toEqual({ secret: 'new' });
    const settings = parse(['-s', 'flag', '--other-secret', 'too'], { DISPY_SECRET: 'env' });
    expect(settings.options).toEqual({ secret: 'flag', otherSecret: 'too' });
    expect(settings.warnings).toEqual([
      '-s/--secret puts the secret on the command line, where every user of this machine can read it (ps, /proc/PID/cmdline); ' +
        'pass it in the environment variable DISPY_SECRET or in a file with --secret-file FILE (mode 0600) instead',
      secretWarning(SPEC.flags.find((f) => f.flag === 'other-secret')!),
    ]);
    expect(settings.warnings[1]).toMatch(/^--other-secret puts .* DISPY_OTHER or in a file with --other-secret-file FILE/);

    const file = path.join(tempDir(), 'secret');
    writeFileSync(file, 'from file\nignored\n', { mode: 0o600 });
    expect(parse(['--other_secret_file', file], { DISPY_OTHER: 'env loses' }).options).toEqual({ otherSecret: 'from file' });
    expect(failure(['-s', 'x', '--secret-file', file])).toBe('give the secret once: -s/--secret or --secret-file, not both');
    chmodSync(file, 0o640);
    expect(failure(['--other-secret-file', file])).toBe(
      `--other-secret-file ${file} may be read or changed by its group or others (mode 0640); make it private: chmod 600 ${file}`,
    );
    writeFileSync(file, '\nsecond\n', { mode: 0o600 });
    chmodSync(file, 0o600);
    expect(failure(['--secret-file', file])).toBe(`--secret-file ${file}: its first line is empty`);
    expect(failure(['--secret-file', path.join(tempDir(), 'none')])).toMatch(/^--secret-file .*none: ENOENT/);
  });

  it('reads --config, with flags winning, and --debug over either spelling of its log level', () => {
    const dir = tempDir();
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ count: 2, ratio: 1, logLevel: 'warn' }));
    expect(parse(['--config', file, '-c', '5']).options).toEqual({ count: 5, ratio: 1, logLevel: 'warn' });
    expect(parse(['--config', file, '-d']).options).toEqual({ count: 2, ratio: 1, loglevel: 'debug' });
    writeFileSync(file, '[1]');
    expect(failure(['--config', file])).toBe(`--config ${file}: must hold a JSON object of options`);
    writeFileSync(file, '{');
    expect(failure(['--config', file])).toMatch(/^--config .*config\.json: .*JSON/);
  });
});

describe('saveCliConfig and cliHelp', () => {
  it('saves the options without the secrets, files as absolute paths, privately, for --config to read back', () => {
    const file = path.join(tempDir(), 'saved.json');
    saveCliConfig(SPEC, file, { count: 2, certfile: 'c.pem', dir: 'relative', secret: 'x', otherSecret: 'y' });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ count: 2, certfile: path.resolve('c.pem'), dir: 'relative' });
    expect(parse(['--config', file]).options).toEqual({ count: 2, certfile: path.resolve('c.pem'), dir: 'relative' });
  });

  it('lists every flag, the common ones too, in one column', () => {
    const help = cliHelp(SPEC);
    expect(help.split('\n').slice(0, 3)).toEqual(['Usage: dispytool [options]', '', 'Does things.']);
    expect(help).toContain("Options (dispy's underscore spellings such as --dest_path are accepted too):");
    expect(help).toContain(`\n  ${'-c, --count N'.padEnd(28)} how many\n`);
    expect(help).toContain(`\n  ${'    --daemon'.padEnd(28)} do not read commands (status, quit) from stdin\n`);
    expect(help).toContain('write the options to a JSON file (without the secrets) and exit');
    for (const flag of ['--secret-file FILE', '--other-secret SECRET', '--config FILE', '-d, --debug', '-h, --help'])
      expect(help).toContain(flag);
    expect(help.endsWith('\n\nThe end.')).toBe(true);
  });
});

describe('runCli before the server runs', () => {
  /** Runs the app with stdout and stderr captured; `create` must not start anything. */
  async function run(argv: string[], env: NodeJS.ProcessEnv, create: (options: Options) => CliServer) {
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((text) => out.push(String(text)) > 0);
    vi.spyOn(process.stderr, 'write').mockImplementation((text) => err.push(String(text)) > 0);
    process.exitCode = undefined;
    await runCli({ spec: SPEC, create }, argv, env);
    const exitCode = process.exitCode;
    vi.restoreAllMocks();
    return { out: out.join(''), err: err.join(''), exitCode };
  }
  const unused = (): CliServer => {
    throw new Error('no server expected');
  };

  it("exits 2 with the app's name and the message when a flag is wrong", async () => {
    expect(await run(['--count', 'x'], {}, unused)).toEqual({
      out: '',
      err: 'dispytool: --count must be an integer, got "x"\n',
      exitCode: 2,
    });
  });

  it('prints --help with the warnings first, and takes the secrets out of the environment', async () => {
    const env: NodeJS.ProcessEnv = { DISPY_OLD: 'x', DISPY_OTHER: 'y', KEPT: 'z' };
    const result = await run(['--help', '-s', 'on the line'], env, unused);
    expect(result.out).toBe(`${cliHelp(SPEC)}\n`);
    expect(result.err).toBe(`dispytool: warning: ${secretWarning(SPEC.flags.find((f) => f.flag === 'secret')!)}\n`);
    expect(result.exitCode).toBeUndefined();
    expect(env).toEqual({ KEPT: 'z' });
  });

  it('checks the options before --save-config writes them, and exits 1 when they are wrong', async () => {
    const file = path.join(tempDir(), 'saved.json');
    const refuse = (): CliServer => {
      throw new DispyError(ErrorCode.OPTION, 'count: too many');
    };
    expect(await run(['--save-config', file, '-c', '9'], {}, refuse)).toEqual({
      out: '',
      err: 'dispytool: count: too many\n',
      exitCode: 1,
    });
    expect(() => readFileSync(file)).toThrow(/ENOENT/);
    const accept = () => ({
      logger: { info: () => {} },
      start: () => Promise.resolve(),
      close: () => Promise.resolve(),
      status: () => ({}),
    });
    expect(await run(['--save-config', file, '-c', '2', '-s', 'x'], {}, accept)).toMatchObject({ out: '', exitCode: undefined });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ count: 2 });
  });

  it('exits 1 with the message when the server cannot start', async () => {
    const failing = () => ({
      logger: { info: () => {} },
      start: () => Promise.reject(new Error('address in use')),
      close: () => Promise.resolve(),
      status: () => ({}),
    });
    expect(await run(['--daemon'], {}, failing)).toEqual({ out: '', err: 'dispytool: address in use\n', exitCode: 1 });
  });
});
