import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DISPYNODE_BIN } from '../../../testing/dispynode-process.mjs';
import { createNamespacePair, namespacesUnavailable, type NamespacePair } from '../../../testing/network-namespaces.js';
import type { ChildProcess } from 'node:child_process';

const unavailable = namespacesUnavailable();
const clientScript = fileURLToPath(new URL('./fixtures/broadcast-client.mjs', import.meta.url));
const cleanups: Array<() => void> = [];

afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

function output(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

describe.skipIf(unavailable)(`broadcast discovery between network namespaces${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  it('finds a node on another host by broadcast and runs jobs there', async () => {
    const pair: NamespacePair = createNamespacePair();
    cleanups.push(() => pair.destroy());
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-netns-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const port = 51348;
    // The node listens on every interface of namespace A, as `npx dispynode` does by default.
    const node = pair.spawnNode(pair.a.ns, [DISPYNODE_BIN, '-p', String(port), '-c', '1', '--daemon', '--dest-path-prefix', dir]);
    cleanups.push(() => node.kill('SIGTERM'));
    const nodeLog = output(node);
    await new Promise<void>((resolve, reject) => {
      let log = '';
      node.stderr!.on('data', (chunk) => {
        log += chunk;
        if (/serving \d+ CPUs/.test(log)) resolve();
      });
      node.once('exit', () => reject(new Error(`dispynode exited: ${log}`)));
    });
    const client = pair.spawnNode(pair.b.ns, [clientScript, String(port)]);
    cleanups.push(() => client.kill('SIGKILL'));
    const timer = setTimeout(() => client.kill('SIGKILL'), 30_000);
    const result = await output(client);
    clearTimeout(timer);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ results: [2, 3, 4], ipAddrs: [pair.a.address, pair.a.address, pair.a.address] });
    node.kill('SIGTERM');
    expect((await nodeLog).code).toBe(0);
  });
});
