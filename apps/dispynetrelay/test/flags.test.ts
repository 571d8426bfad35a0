import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FLAGS, SECRET_ON_COMMAND_LINE, helpText, parseFlags, saveConfig } from '../src/flags.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dispynetrelay-flags-'));
  dirs.push(dir);
  return dir;
}

describe('dispynetrelay flags', () => {
  it("take API.md's flags, dispy's underscore spellings too, into the relay's options", () => {
    const settings = parseFlags(
      [
        '-i',
        '127.0.2.5',
        '--ext-host',
        '127.0.113.9',
        '-p',
        '9701',
        '--relay_port',
        '9711',
        '--scheduler-node',
        '127.0.1.2',
        '--scheduler-node=127.0.1.3:9700',
      ],
      {},
    );
    expect(settings.options).toEqual({
      hosts: ['127.0.2.5'],
      extHost: '127.0.113.9',
      nodePort: 9701,
      relayPort: 9711,
      schedulerNodes: ['127.0.1.2', '127.0.1.3:9700'],
    });
    expect(parseFlags(['--scheduler-port', '9700', '-n', '127.0.2.7', '--client-ttl', '30', '--daemon', '-d'], {})).toMatchObject({
      options: { schedulerPort: 9700, nodes: ['127.0.2.7'], clientTtl: 30, loglevel: 'debug' },
      daemon: true,
    });
  });

  it('take the secret from DISPY_SECRET, a private file, or -s with a warning, once', () => {
    expect(parseFlags([], { DISPY_SECRET: 'from env' }).options.secret).toBe('from env');
    expect(parseFlags(['-s', 'on the line'], {})).toMatchObject({ options: { secret: 'on the line' }, warnings: [SECRET_ON_COMMAND_LINE] });
    const file = path.join(tempDir(), 'secret');
    writeFileSync(file, 'from file\nignored\n', { mode: 0o600 });
    expect(parseFlags(['--secret-file', file], { DISPY_SECRET: 'env loses' }).options.secret).toBe('from file');
    chmodSync(file, 0o644);
    expect(() => parseFlags(['--secret-file', file], {})).toThrow(/chmod 600/);
    expect(() => parseFlags(['-s', 'x', '--secret-file', file], {})).toThrow(/give the secret once/);
  });

  it('refuse what is wrong, naming the flag and the value', () => {
    expect(() => parseFlags(['-p', 'abc'], {})).toThrow('--dispy-port must be an integer, got "abc"');
    expect(() => parseFlags(['--client-ttl', 'soon'], {})).toThrow('--client-ttl must be a number, got "soon"');
    expect(() => parseFlags(['--relay'], {})).toThrow(/--relay/);
    expect(() => parseFlags(['stray'], {})).toThrow(/unexpected argument "stray"/);
  });

  it('read --config, with flags winning, and --save-config writes it without the secret', () => {
    const dir = tempDir();
    const file = path.join(dir, 'relay.json');
    saveConfig(file, { nodes: ['127.0.2.7'], nodePort: 9701, secret: 'kept out' });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ nodes: ['127.0.2.7'], nodePort: 9701 });
    expect(parseFlags(['--config', file, '-p', '9801'], {}).options).toEqual({ nodes: ['127.0.2.7'], nodePort: 9801 });
    writeFileSync(path.join(dir, 'bad.json'), '[1]');
    expect(() => parseFlags(['--config', path.join(dir, 'bad.json')], {})).toThrow(/must hold a JSON object/);
  });

  it("say what to do instead of Python dispy's dispynetrelay flags that this one does not have", () => {
    expect(() => parseFlags(['--ip_addr', '127.0.2.5'], {})).toThrow(
      "--ip-addr is a flag of Python dispy's dispynetrelay: spelled -i/--host ADDR",
    );
    expect(() => parseFlags(['--certfile', 'c.pem'], {})).toThrow('nothing of the relay goes over TCP');
    expect(() => parseFlags(['--keyfile', 'c.key'], {})).toThrow('nothing of the relay goes over TCP');
    expect(() => parseFlags(['--ipv4_udp_multicast'], {})).toThrow('not supported yet');
    expect(() => parseFlags(['--relay', '1'], {})).toThrow('unknown flag --relay; did you mean --relay-port?; see --help');
    expect(() => parseFlags(['-p', '-1'], {})).toThrow('--dispy-port must be an integer, got "-1"');
  });

  it('--help lists every flag', () => {
    const help = helpText();
    for (const f of FLAGS) expect(help).toContain(`--${f.flag}`);
  });
});
