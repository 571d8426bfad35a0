import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
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

/** Resolves as `promise` does; rejects with `what` if it has not settled within `ms`. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The replies a node saved under its prefix for clients gone away: one folder per computation, with its replies' files. */
function savedReplies(prefix: string): Map<string, string[]> {
  const root = path.join(prefix, 'saved-replies');
  const folders = existsSync(root) ? readdirSync(root) : [];
  return new Map(folders.map((folder) => [folder, readdirSync(path.join(root, folder)).filter((name) => name.endsWith('.reply'))]));
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

  it('is noticed by the node within four heartbeats: the job ends, its reply waits on disk, and another client is served meanwhile', async () => {
    const pair = createNamespacePair();
    cleanups.push(() => pair.destroy());
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-link-down-node-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const prefix = path.join(dir, 'node');
    const port = 51349;
    const heartbeatSeconds = 1;
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
      prefix,
      '--heartbeat-interval',
      String(heartbeatSeconds),
      '--zombie-interval',
      '1',
    ]);
    cleanups.push(() => node.kill('SIGKILL'));
    const nodeLog = watch(node);
    await within(20_000, 'the node serves', nodeLog.until(/serving \d+ CPUs/));
    /** Runs one job of `seconds` in a client process in namespace `ns`; its runs are counted in `runs`. */
    const startClient = (ns: string, runs: string, seconds: number) => {
      const client = pair.spawnNode(ns, [clientScript, pair.a.address, String(port), runs, String(seconds)]);
      cleanups.push(() => client.kill('SIGKILL'));
      const timer = setTimeout(() => client.kill('SIGKILL'), 60_000);
      cleanups.push(() => clearTimeout(timer));
      return watch(client);
    };
    const runs = path.join(dir, 'runs.txt');
    const first = startClient(pair.b.ns, runs, 6);
    await within(20_000, 'the job runs', first.until(/^running$/m));
    setLink(pair.a.ns, 'down');

    // The node hears nothing more from the client (no FIN, no reset): its heartbeat gives the link up.
    const noticed = nodeLog.until(/client 10\.213\.\d+\.2:\d+: heard nothing for [\d.]+ s; the link is presumed dead/);
    // 4 heartbeats (and a check every quarter of one), with room for a loaded machine; the zombie interval is 60 s.
    await within((4 + 4) * heartbeatSeconds * 1000, 'the node notices the dead link', noticed);
    const detached = /client 10\.213\.\d+\.2:\d+ disconnected: the link timed out; its 1 computations are kept for it/;
    await within(5_000, 'the node keeps the computation', nodeLog.until(detached));
    // The job runs to its end; its reply waits on disk for its client, and the node is free.
    await within(20_000, 'the node is released', nodeLog.until(/client 10\.213\.\d+\.2:\d+ released this node/));
    for (const deadline = Date.now() + 10_000; [...savedReplies(prefix).values()].flat().length === 0;) {
      if (Date.now() > deadline) throw new Error(`no reply saved under ${prefix}:\n${nodeLog.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const saved = savedReplies(prefix);
    expect([...saved.values()]).toEqual([['1.reply']]);
    expect(readFileSync(runs, 'utf8')).toBe('run\n');

    // Another client (in the node's namespace, which still reaches it) is served while the first one's link is down.
    const otherRuns = path.join(dir, 'other-runs.txt');
    const second = startClient(pair.a.ns, otherRuns, 0);
    expect(await within(30_000, 'the second client ends', second.exited), second.stderr).toBe(0);
    expect(JSON.parse(second.stdout.trim().split('\n').at(-1)!)).toEqual({ status: 'Finished', result: 'done', finished: 1 });
    expect(readFileSync(otherRuns, 'utf8')).toBe('run\n');
    // (the first client has not come back meanwhile)
    expect(nodeLog.stderr.match(/client \S+ \(10\.213\.\d+\.2:\d+\) authenticated/g)).toHaveLength(1);

    // The link comes back within the zombie interval: the first client gets its result from disk, once.
    setLink(pair.a.ns, 'up');
    expect(await within(30_000, 'the first client ends', first.exited), first.stderr).toBe(0);
    expect(JSON.parse(first.stdout.trim().split('\n').at(-1)!)).toEqual({ status: 'Finished', result: 'done', finished: 1 });
    expect(readFileSync(runs, 'utf8')).toBe('run\n');
    await within(5_000, 'the node resends the saved reply', nodeLog.until(/reattached \(live\): 0 jobs held, 1 replies resent/));
    // The node serves several computations at once (issue 11): the second client's did not close
    // the first one's, which is taken back live, not as a loss.
    expect(first.stderr).not.toMatch(/lost the computation|closed the computation meanwhile/);
    // Collected and closed: the node deleted the saved reply.
    expect(savedReplies(prefix).size).toBe(0);
  }, 120_000);
});
