import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DispyNodeServer } from '@dispy/node';
import { helpText, parseFlags } from '../src/flags.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function config(options: Record<string, unknown>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-flags-'));
  dirs.push(dir);
  const file = path.join(dir, 'node.json');
  writeFileSync(file, JSON.stringify(options));
  return file;
}

/** The log level a node started with these flags would use. */
function loglevel(argv: string[]): string {
  return new DispyNodeServer(parseFlags(argv, {}).options).options.loglevel;
}

describe("dispynode flags: dispy's and mistaken ones", () => {
  const failure = (argv: string[]) => {
    try {
      parseFlags(argv, {});
    } catch (error) {
      return (error as Error).message;
    }
    return 'accepted';
  };

  it("says what to do instead of each flag of Python dispy's dispynode that this one does not have", () => {
    expect(failure(['--admin_secret', 'x'])).toMatch(/^--admin-secret is a flag of Python dispy's dispynode: not supported yet .*stdin/);
    expect(failure(['--msg-timeout', '5'])).toContain('replaced by --heartbeat-interval SECONDS');
    expect(failure(['--unsafe_setup'])).toContain('not needed here: setup always runs in the worker processes');
    expect(failure(['--init', 'setup.py'])).toContain('not needed here');
    expect(failure(['--force_cleanup'])).toContain("each cluster's cleanup option decides");
  });

  it('names an unknown flag, with the one likely meant, never Node\'s "place it at the end after --"', () => {
    expect(failure(['--cpu', '2'])).toBe('unknown flag --cpu; did you mean --cpus?; see --help');
    expect(failure(['--destpathprefix', '/x'])).toBe('unknown flag --destpathprefix; did you mean --dest-path-prefix?; see --help');
    expect(failure(['--bogus'])).toBe('unknown flag --bogus; see --help');
    expect(failure(['-x'])).toBe('unknown flag -x; see --help');
  });
});

describe('dispynode flags', () => {
  it('reads the log level from a config file as loglevel or logLevel; --debug wins over either', () => {
    expect(loglevel([])).toBe('info');
    expect(loglevel(['--config', config({ loglevel: 'warn' })])).toBe('warn');
    expect(loglevel(['--config', config({ logLevel: 'error' })])).toBe('error');
    expect(loglevel(['--config', config({ logLevel: 'error' }), '--debug'])).toBe('debug');
  });

  it('says in --help how --ext-host pairs with --host', () => {
    expect(helpText()).toMatch(
      /--ext-host ADDR\s+address clients must connect to instead of the served one \(NAT, port forwarding\), repeatable: paired with --host by position/,
    );
  });
});
