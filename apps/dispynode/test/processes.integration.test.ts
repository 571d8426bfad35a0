import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DispyJob, JobCluster } from '@dispy/client';
import { isAlive, startNode, stopAllNodes, type NodeProcess } from '../../../testing/dispynode-process.mjs';

/*
 * What a node's processes leave behind: workers after their node is killed, children that jobs
 * start, and output too large for one reply. Each test finds the processes it looks for in /proc
 * (`sleep 301`, spawned by the jobs here only), and kills any left in afterEach, so a failing
 * test leaves nothing running.
 */

const clusters: JobCluster[] = [];
const cleanups: Array<() => void> = [];

/** PIDs of every `sleep 301` running now. */
function sleepers(): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8') === 'sleep\u0000301\u0000' && !isZombie(Number(name))) found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function isZombie(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

/** The environment of `pid`, as NAME=VALUE entries. */
function environOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\u0000');
  } catch {
    return [];
  }
}

/** PIDs of the processes whose environment has an entry starting with `entry`. */
function processesWith(entry: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid)
    .map(Number)
    .filter((pid) => !isZombie(pid) && environOf(pid).some((e) => e.startsWith(entry)));
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 2 })));
  await stopAllNodes();
  for (const cleanup of cleanups.splice(0)) cleanup();
  killAll(sleepers());
});

function clusterOn<F extends (...args: never[]) => unknown>(node: NodeProcess, fn: F, extra: Record<string, unknown> = {}) {
  const cluster = new JobCluster(fn, {
    nodes: [node.host],
    nodePort: node.port,
    ipAddr: '127.0.0.1',
    port: 0,
    loglevel: 'silent',
    // Clusters here end with jobs killed: their recover files would be left in the repository's root.
    recoverFile: false,
    ...extra,
  });
  clusters.push(cluster);
  return cluster;
}

/**
 * Starts `sleep 301` five ways (detached, plain, through a shell that exits at once, with an `env`
 * of its own, and by execSync through a shell), then ends or waits.
 */
const spawner = async (wait: boolean) => {
  const { execSync, spawn } = require('node:child_process') as typeof import('node:child_process');
  spawn('sleep', ['301'], { detached: true, stdio: 'ignore' }).unref();
  spawn('sleep', ['301'], { stdio: 'ignore' });
  spawn('sh', ['-c', 'sleep 301 &'], { stdio: 'ignore' });
  spawn('sleep', ['301'], { detached: true, stdio: 'ignore', env: { PATH: process.env.PATH } }).unref();
  execSync('sleep 301 >/dev/null 2>&1 &');
  if (wait) await new Promise(() => undefined);
  return 'spawned';
};

const within = { timeout: 10_000, interval: 50 };

describe("a job's processes", () => {
  it('are killed when the job ends', async () => {
    const node = await startNode({ host: '127.0.140.1', cpus: 1 });
    const cluster = clusterOn(node, spawner);
    const job = cluster.submit(false);
    expect(await job.wait()).toBe('spawned');
    await vi.waitFor(() => expect(sleepers()).toEqual([]), within);
    // The worker itself lives on and runs the next job.
    expect(await cluster.submit(false).wait()).toBe('spawned');
  });

  it('are killed when the job times out', async () => {
    const node = await startNode({ host: '127.0.140.2', cpus: 1 });
    const cluster = clusterOn(node, spawner);
    const job = cluster.submitJob({ args: [true], timeout: 3 });
    await vi.waitFor(() => expect(sleepers()).toHaveLength(5), within);
    await job.wait();
    expect(job.status).toBe(DispyJob.Terminated);
    await vi.waitFor(() => expect(sleepers()).toEqual([]), within);
  });

  it('are killed when the job is cancelled', async () => {
    const node = await startNode({ host: '127.0.140.3', cpus: 1 });
    const cluster = clusterOn(node, spawner);
    const job = cluster.submit(true);
    await vi.waitFor(() => expect(sleepers()).toHaveLength(5), within);
    await cluster.cancel(job);
    await job.wait();
    expect(job.status).toBe(DispyJob.Cancelled);
    await vi.waitFor(() => expect(sleepers()).toEqual([]), within);
  });

  it('are killed when the cluster closes', async () => {
    const node = await startNode({ host: '127.0.140.4', cpus: 1 });
    const cluster = clusterOn(node, spawner);
    cluster.submit(true);
    await vi.waitFor(() => expect(sleepers()).toHaveLength(5), within);
    await cluster.close({ timeout: 1 });
    await vi.waitFor(() => expect(sleepers()).toEqual([]), within);
    expect(node.child.exitCode).toBeNull();
  });
});

describe('a killed node', () => {
  it('takes its workers with it, even one in a CPU-bound loop, and what their jobs started', async () => {
    const node = await startNode({ host: '127.0.140.5', cpus: 1 });
    const cluster = clusterOn(node, async () => {
      const { spawn } = require('node:child_process') as typeof import('node:child_process');
      spawn('sleep', ['301'], { detached: true, stdio: 'ignore' }).unref();
      for (;;);
    });
    cluster.submit();
    await vi.waitFor(() => expect(sleepers()).toHaveLength(1), within);
    const workers = node.workerPids();
    expect(workers).toHaveLength(1);
    node.child.kill('SIGKILL');
    await vi.waitFor(() => expect([...workers.filter(isAlive), ...sleepers()]).toEqual([]), within);
  });

  it('leaves nothing that --clean does not stop, even without its watchdog; another PID is left alone', async () => {
    const prefix = mkdtempSync(path.join(os.tmpdir(), 'dispy-clean-procs-'));
    cleanups.push(() => rmSync(prefix, { recursive: true, force: true }));
    const first = await startNode({ host: '127.0.140.6', cpus: 1, args: ['--dest-path-prefix', prefix] });
    const cluster = clusterOn(first, async () => {
      const { spawn } = require('node:child_process') as typeof import('node:child_process');
      spawn('sleep', ['301'], { detached: true, stdio: 'ignore' }).unref();
      for (;;);
    });
    cluster.submit();
    await vi.waitFor(() => expect(sleepers()).toHaveLength(1), within);
    const workers = first.workerPids();
    expect(workers).toHaveLength(1);
    const token = environOf(workers[0]!)
      .find((entry) => entry.startsWith('DISPY_NODE_MARK='))!
      .slice('DISPY_NODE_MARK='.length);
    cleanups.push(() => killAll(processesWith(`DISPY_NODE_MARK=${token}`)));
    // As if the whole group were killed at once: the watchdog first, then the node.
    const watchdogs = processesWith(`DISPY_WATCHDOG_TOKEN=${token}`);
    expect(watchdogs).toHaveLength(1);
    killAll(watchdogs);
    await vi.waitFor(() => expect(watchdogs.filter(isAlive)).toEqual([]), within);
    first.child.kill('SIGKILL');
    await vi.waitFor(() => expect(first.child.signalCode).toBe('SIGKILL'), within);
    expect(workers.filter(isAlive)).toEqual(workers);
    expect(sleepers()).toHaveLength(1);

    await startNode({ host: '127.0.140.7', cpus: 1, args: ['--dest-path-prefix', prefix, '--clean'] });
    await vi.waitFor(() => expect([...workers.filter(isAlive), ...sleepers()]).toEqual([]), within);
  });

  it('--clean kills no process that only has the PID an earlier node recorded', async () => {
    const prefix = mkdtempSync(path.join(os.tmpdir(), 'dispy-clean-pid-'));
    cleanups.push(() => rmSync(prefix, { recursive: true, force: true }));
    const stranger = spawn('sleep', ['301'], { stdio: 'ignore' });
    cleanups.push(() => stranger.kill('SIGKILL'));
    // Its PID, an unknown token, a start time that is not its own.
    writeFileSync(path.join(prefix, 'dispynode.pid'), `${stranger.pid}\n0123456789abcdef01234567\n1`, { mode: 0o600 });
    await startNode({ host: '127.0.140.8', cpus: 1, args: ['--dest-path-prefix', prefix, '--clean'] });
    expect(isAlive(stranger.pid!)).toBe(true);
  });
});

describe('output too large for one reply', () => {
  it('is cut with a marker; a healthy job beside it finishes and nothing reruns', async () => {
    const node = await startNode({ host: '127.0.140.9', cpus: 2 });
    const cluster = clusterOn(
      node,
      (bytes: number) => {
        if (bytes > 0) process.stdout.write('x'.repeat(bytes));
        return bytes;
      },
      { reentrant: true },
    );
    const big = cluster.submit(70_000_000);
    const healthy = cluster.submit(0);
    expect(await healthy.wait()).toBe(0);
    expect(await big.wait()).toBe(70_000_000);
    expect(big.status).toBe(DispyJob.Finished);
    expect(big.stdout).toHaveLength(1024 * 1024 + '…[dispy: 69.0 MB of stdout truncated]'.length);
    expect(big.stdout.endsWith('…[dispy: 69.0 MB of stdout truncated]')).toBe(true);
    // The connection stayed up: the big job's reply came, and the next job runs on it.
    expect(await cluster.submit(0).wait()).toBe(0);
  });

  it('ends only its own job, Terminated, naming the size and the limit, when the node has no cap', async () => {
    const node = await startNode({ host: '127.0.140.10', cpus: 2, args: ['--max-output-size', '0'] });
    const cluster = clusterOn(node, (bytes: number) => {
      if (bytes > 0) process.stdout.write('x'.repeat(bytes));
      return bytes;
    });
    const big = cluster.submit(70_000_000);
    const healthy = cluster.submit(0);
    expect(await healthy.wait()).toBe(0);
    await big.wait();
    expect(big.status).toBe(DispyJob.Terminated);
    expect(big.exception).toMatch(
      /the job's reply is 70\.0 MB \(result .*, stdout 70\.0 MB, .*\), over the limit of 67\.0 MB for one reply/,
    );
    expect(big.stdout.length).toBeLessThan(2 * 1024 * 1024);
    expect(await cluster.submit(1).wait()).toBe(1);
  });
});
