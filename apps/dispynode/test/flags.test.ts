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
