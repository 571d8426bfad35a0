import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { DISPYNODE_BIN } from '../../../testing/dispynode-process.mjs';
import { createNamespacePair, namespacesUnavailable } from '../../../testing/network-namespaces.js';

const unavailable = namespacesUnavailable();
const clientScript = fileURLToPath(new URL('./fixtures/link-down-client.mjs', import.meta.url));
const cleanups: Array<() => void> = [];

afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/** Collects a child's output; `until(pattern)` resolves when stdout or stderr so far matches (rejects when it exits first). */
function watch(child: ChildProcess) {
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const heard = () => listeners.forEach((listener) => listener());
  child.stdout!.on('data', (chunk) => ((stdout += chunk), heard()));
  child.stderr!.on('data', (chunk) => ((stderr += chunk), heard()));
  return {
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
    until: (pattern: RegExp) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (pattern.test(stdout) || pattern.test(stderr)) {
            listeners.delete(check);
            resolve();
          }
        };
        listeners.add(check);
        void exited.then(() => reject(new Error(`exited before ${pattern}: ${stdout}${stderr}`)));
        check();
      }),
  };
}

/** Sets the namespace's end of the veth pair down or up: no FIN, no reset, packets just stop. */
function setLink(ns: string, state: 'down' | 'up'): void {
  const links = execFileSync('ip', ['-n', ns, '-o', 'link', 'show', 'type', 'veth'], { encoding: 'utf8' });
  const name = /^\d+: ([^@:]+)/.exec(links)?.[1];
  if (!name) throw new Error(`no veth in namespace ${ns}: ${links}`);
  execFileSync('ip', ['-n', ns, 'link', 'set', name, state]);
}

describe.skipIf(unavailable)(`a link taken down without a FIN${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  it('is noticed by the client within four heartbeats; back up, the job ends Finished once and ran once', async () => {
    const pair = createNamespacePair();
    cleanups.push(() => pair.destroy());
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-link-down-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const runs = path.join(dir, 'runs.txt');
    const port = 51348;
    const node = pair.spawnNode(pair.a.ns, [
      DISPYNODE_BIN,
      '-i',
      pair.a.address,
      '-p',
      String(port),
      '-c',
      '1',
      '--daemon',
      '--dest-path-prefix',
      dir,
      '--heartbeat-interval',
      '1',
      '--zombie-interval',
      '1',
    ]);
    cleanups.push(() => node.kill('SIGKILL'));
    await watch(node).until(/serving \d+ CPUs/);
    const client = pair.spawnNode(pair.b.ns, [clientScript, pair.a.address, String(port), runs, '6']);
    cleanups.push(() => client.kill('SIGKILL'));
    const timer = setTimeout(() => client.kill('SIGKILL'), 60_000);
    cleanups.push(() => clearTimeout(timer));
    const output = watch(client);
    await output.until(/^running$/m);
    setLink(pair.a.ns, 'down');
    await output.until(/lost the link to node .*sent nothing for \d+ s \(4 heartbeats\); link presumed dead/);
    setLink(pair.a.ns, 'up');
    await output.until(/is back after/);
    expect(await output.exited, output.stderr).toBe(0);
    const result = JSON.parse(output.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(result).toEqual({ status: 'Finished', result: 'done', finished: 1 });
    expect(readFileSync(runs, 'utf8')).toBe('run\n');
    expect(output.stderr.match(/lost the link to node/g)).toHaveLength(1);
    expect(output.stderr.match(/is back after/g)).toHaveLength(1);
  }, 90_000);
});
