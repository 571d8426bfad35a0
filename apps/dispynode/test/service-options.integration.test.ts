import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DispyJob, JobCluster, NodeAllocate, type DispyNode } from '@dispy/client';
import { DISPYNODE_BIN, freePort, startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';
import { startRelay } from '../../../testing/tcp-relay.js';

const clusters: JobCluster[] = [];
const cleanups: Array<() => void> = [];

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 2 })));
  for (const cleanup of cleanups.splice(0)) cleanup();
  await stopAllNodes();
});

function clusterFor<F extends (...args: never[]) => unknown>(fn: F, host: string, port: number, extra: Record<string, unknown> = {}) {
  const cluster = new JobCluster(fn, { nodes: [host], nodePort: port, ipAddr: '127.0.0.1', port: 0, loglevel: 'silent', ...extra });
  clusters.push(cluster);
  return cluster;
}

/** Local time of day `ms` from now, as HH:MM:SS. */
function inAMoment(ms: number): string {
  const at = new Date(Date.now() + ms);
  return [at.getHours(), at.getMinutes(), at.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-service-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('dispynode service options', () => {
  it('--serve 1 exits after serving one client', async () => {
    const node = await startNode({ host: '127.0.8.2', cpus: 1, args: ['--serve', '1'] });
    const cluster = clusterFor((n: number) => n, node.host, node.port);
    expect(await cluster.submit(5).wait()).toBe(5);
    await cluster.close();
    await node.waitForLog(/served 1 clients \(--serve\): stopping/);
    await vi.waitFor(() => expect(node.child.exitCode).toBe(0), { timeout: 10_000 });
  });

  it('--heartbeat-interval and --zombie-interval free a node whose client went silent (SIGSTOP) or was killed (SIGKILL)', async () => {
    const node = await startNode({ host: '127.0.8.3', cpus: 1, args: ['--heartbeat-interval', '0.25', '--zombie-interval', '0.02'] });
    const script = fileURLToPath(new URL('./fixtures/long-client.mjs', import.meta.url));
    const startClient = async () => {
      const client = spawn(process.execPath, [script, node.host, String(node.port)], { stdio: ['ignore', 'pipe', 'inherit'] });
      cleanups.push(() => client.kill('SIGKILL'));
      await new Promise<void>((resolve) => client.stdout.once('data', () => resolve()));
      return client;
    };
    // A stopped process keeps its connection open but sends nothing: after 4 heartbeat intervals
    // the node presumes the link dead. Its job goes on for its client to take back, until the
    // zombie interval passes: then it is killed and the node freed.
    const silent = await startClient();
    silent.kill('SIGSTOP');
    await node.waitForLog(/heard nothing for [\d.]+ s; the link is presumed dead/);
    await node.waitForLog(/its client was not back within the zombie interval/);
    await node.waitForLog(/released this node/);
    silent.kill('SIGKILL');
    // A killed one closes its connection: the node frees itself once the zombie interval passes.
    const killed = await startClient();
    killed.kill('SIGKILL');
    await vi.waitFor(() => expect(node.log.match(/released this node/g)).toHaveLength(2), { timeout: 10_000 });
    const next = clusterFor((n: number) => n * 2, node.host, node.port);
    expect(await next.submit(21).wait()).toBe(42);
  });

  it('--service-stop refuses new jobs while running ones finish', async () => {
    const node = await startNode({ host: '127.0.8.4', cpus: 1, args: ['--service-stop', inAMoment(2500)] });
    const cluster = clusterFor(
      async (ms: number) => {
        await new Promise((resolve) => setTimeout(resolve, ms));
        return ms;
      },
      node.host,
      node.port,
    );
    const running = cluster.submit(4000);
    await vi.waitFor(() => expect(running.status).toBe(DispyJob.Running), { timeout: 5000 });
    await node.waitForLog(/service stop/, 10_000);
    const late = cluster.submit(10);
    expect(await running.wait()).toBe(4000);
    expect(running.status).toBe(DispyJob.Finished);
    expect(await cluster.wait(1)).toBe(false);
    expect(late.status).toBe(DispyJob.Created);
  });

  it('--scheduler-host announces the node to a client, which finds it without broadcast', async () => {
    const clientPort = await freePort('127.0.0.1');
    const nodePort = await freePort('127.0.8.5');
    // Loopback has no broadcast: the announcement is the only way this cluster learns of the node.
    const cluster = new JobCluster((n: number) => n + 1, {
      nodes: ['127.0.8.*'],
      nodePort,
      ipAddr: '127.0.0.1',
      port: clientPort,
      loglevel: 'silent',
    });
    clusters.push(cluster);
    const job = cluster.submit(1);
    await startNode({ host: '127.0.8.5', port: nodePort, cpus: 1, args: ['--scheduler-host', `127.0.0.1:${clientPort}`] });
    expect(await job.wait()).toBe(2);
    expect(job.ipAddr).toBe('127.0.8.5');
  });

  it('--clean stops what an earlier node left and empties the prefix', async () => {
    const prefix = tempDir();
    const first = await startNode({ host: '127.0.8.6', cpus: 1, args: ['--dest-path-prefix', prefix] });
    writeFileSync(path.join(prefix, 'leftover.txt'), 'old');
    const second = await startNode({ host: '127.0.8.7', cpus: 1, args: ['--dest-path-prefix', prefix, '--clean'] });
    await vi.waitFor(() => expect(first.child.exitCode ?? first.child.signalCode).not.toBeNull(), { timeout: 10_000 });
    expect(existsSync(path.join(prefix, 'leftover.txt'))).toBe(false);
    expect(readFileSync(path.join(prefix, 'dispynode.pid'), 'utf8').split('\n')[0]).toBe(String(second.child.pid));
  });

  it('lets a computation stop the node only with --client-shutdown', async () => {
    const stubborn = await startNode({ host: '127.0.8.8', cpus: 1 });
    type Asking = { dispynode_shutdown?: () => void };
    const stopper = () => {
      (globalThis as Asking).dispynode_shutdown!();
      return 'asked';
    };
    const first = clusterFor(stopper, stubborn.host, stubborn.port);
    expect(await first.submit().wait()).toBe('asked');
    await first.close();
    await stubborn.waitForLog(/asked this node to shut down; ignored/);
    expect(stubborn.child.exitCode).toBeNull();

    const willing = await startNode({ host: '127.0.8.9', cpus: 1, args: ['--client-shutdown'] });
    const second = clusterFor(stopper, willing.host, willing.port);
    expect(await second.submit().wait()).toBe('asked');
    await second.close();
    await vi.waitFor(() => expect(willing.child.exitCode).toBe(0), { timeout: 10_000 });
  });

  it('saves its options with --save-config and reads them back with --config', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'node.json');
    const saved = spawn(process.execPath, [
      DISPYNODE_BIN,
      '--save-config',
      file,
      '-c',
      '1',
      '--name',
      'configured',
      '--zombie-interval',
      '2.5',
      '--max-file-size',
      '2m',
      '-s',
      'hush',
    ]);
    expect(await new Promise((resolve) => saved.once('exit', resolve))).toBe(0);
    const options = JSON.parse(readFileSync(file, 'utf8'));
    expect(options).toMatchObject({ cpus: 1, name: 'configured', zombieInterval: 2.5, maxFileSize: 2 * 1024 * 1024 });
    expect(options).not.toHaveProperty('secret');
    const node = await startNode({ host: '127.0.8.10', args: ['--config', file] });
    expect(node.log).toMatch(/\[dispynode configured\] info: serving \d CPUs/);
  });

  it('refuses a malformed service time with the flag named', async () => {
    const child = spawn(process.execPath, [DISPYNODE_BIN, '--service-stop', '25:00', '-p', '0', '-i', '127.0.8.11']);
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    expect(await new Promise((resolve) => child.once('exit', resolve))).toBe(1);
    expect(stderr).toContain('option "serviceStop": must be a time of day HH:MM');
  });

  it('takes "cpus N" on stdin and tells the client; a job sent meanwhile goes back to the queue and runs later', async () => {
    // The node tells clients to reach it at 127.0.8.13 (--ext-host), where a relay to it lets the
    // test hold what the node sends: the client then sends a job after the node stopped taking
    // them, before it can know.
    const relayHost = '127.0.8.13';
    const port = await freePort('127.0.8.12');
    const prefix = tempDir();
    const child = spawn(
      process.execPath,
      [DISPYNODE_BIN, '-i', '127.0.8.12', '-p', String(port), '-c', '2', '--ext-host', relayHost, '--dest-path-prefix', prefix],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    cleanups.push(() => child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    /** Resolves once the node's output (stdout or stderr) matches `pattern`. */
    const printed = (stream: 'stdout' | 'stderr', pattern: RegExp) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (!pattern.test(stream === 'stdout' ? stdout : stderr)) return;
          child[stream].off('data', check);
          resolve();
        };
        child[stream].on('data', check);
        check();
      });
    await printed('stderr', /serving 2 CPUs/);
    const relay = await startRelay(relayHost, '127.0.8.12', port);
    cleanups.push(() => void relay.close());
    // Each job's statuses in order: the status, the host of the node clusterStatus names, and
    // the host the job names (job.ipAddr).
    const history = new Map<DispyJob, Array<[number, string | undefined, string | undefined]>>();
    const waiters = new Set<{ job: DispyJob; status: number; count: number; resolve: () => void }>();
    const wake = () => {
      for (const waiter of waiters) {
        const times = (history.get(waiter.job) ?? []).filter(([status]) => status === waiter.status).length;
        if (times < waiter.count) continue;
        waiters.delete(waiter);
        waiter.resolve();
      }
    };
    const clusterStatus = (status: number, node: DispyNode | undefined, job: DispyJob | undefined) => {
      if (!job) return;
      history.set(job, [...(history.get(job) ?? []), [status, node?.ipAddr, job.ipAddr]]);
      wake();
    };
    /** Resolves once `job` has been reported `status` `count` times. */
    const reported = (job: DispyJob, status: number, count = 1) =>
      new Promise<void>((resolve) => {
        waiters.add({ job, status, count, resolve });
        wake();
      });
    const cluster = new JobCluster((n: number) => n, {
      nodes: [new NodeAllocate('127.0.8.12', { port }), new NodeAllocate(relayHost, { port })],
      ipAddr: '127.0.0.1',
      port: 0,
      loglevel: 'silent',
      clusterStatus,
    });
    clusters.push(cluster);
    expect(await cluster.submit(1).wait()).toBe(1);
    child.stdin.write('cpus 1\nstatus\n');
    await printed('stdout', /serving 1 CPUs[^]*"cpus": 1/);

    // The node stops taking jobs; what it says to the client is held back, so the client sends
    // the next job there. The node refuses it, and it goes back to the client's queue.
    relay.hold();
    child.stdin.write('cpus 0\n');
    await printed('stdout', /serving 0 CPUs/);
    const job = cluster.submit(7);
    // Sent to the node, where it waits for a worker: still Created, naming the node.
    await vi.waitFor(() => expect(job.ipAddr).toBe(relayHost));
    expect(job.status).toBe(DispyJob.Created);
    relay.release();
    await Promise.race([reported(job, DispyJob.Created, 2), job.wait()]);
    expect(job.status).toBe(DispyJob.Created);

    // Once the node offers CPUs again, the job runs there, its argument intact.
    child.stdin.write('cpus 2\n');
    expect(await job.wait()).toBe(7);
    // Sent to the node (no change: it waits there), back in the queue naming the node it left, then run there.
    expect(history.get(job)).toEqual([
      [DispyJob.Created, undefined, undefined],
      [DispyJob.Created, relayHost, relayHost],
      [DispyJob.Running, relayHost, relayHost],
      [DispyJob.Finished, relayHost, relayHost],
    ]);
    child.stdin.write('cpus 7\n');
    await printed('stdout', /cpus must be an integer from -2 to 2, got 7/);
    child.stdin.end('quit\n');
    expect(await new Promise((resolve) => child.once('exit', resolve)), stderr).toBe(0);
  });
});
