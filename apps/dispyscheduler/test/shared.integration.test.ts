/*
 * dispyscheduler with real processes over loopback (127.0.123.*): client programs sharing nodes
 * through it, a wrong cluster secret, a client killed mid-run, and the scheduler restarted while
 * a client is idle.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { DispyJob, DispyNode, SharedJobCluster, recoverJobs } from '@dispy/client';
import { freePort, startNode, stopAllNodes, type NodeProcess } from '../../../testing/dispynode-process.mjs';
import { startScheduler, stopAllSchedulers, type SchedulerProcess } from '../../../testing/dispyscheduler-process.mjs';

const NODE_SECRET = 'node secret of the shared scheduler tests';
const CLUSTER_SECRET = 'cluster secret of the shared scheduler tests';
const CLIENT = fileURLToPath(new URL('./fixtures/shared-client.mjs', import.meta.url));

interface ClientResult {
  results: (number | null)[];
  finished: number;
  exceptions: string[];
  hosts: string[];
}

interface ClientProcess {
  child: ChildProcess;
  readonly stdout: string;
  /** Resolves when its stdout matches. */
  waitFor(pattern: RegExp): Promise<void>;
  /** Its exit code and RESULT line (undefined when it printed none). */
  done: Promise<{ code: number | null; result?: ClientResult; stderr: string }>;
}

const clients: ClientProcess[] = [];
const clusters: SharedJobCluster[] = [];

afterEach(async () => {
  for (const client of clients.splice(0))
    if (client.child.exitCode === null && client.child.signalCode === null) client.child.kill('SIGKILL');
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 1 })));
  await stopAllSchedulers();
  await stopAllNodes();
});

/** Runs the fixture client program against `scheduler`. */
function runClient(
  scheduler: SchedulerProcess,
  settings: { factor: number; count: number; sleepMs?: number | number[]; secret?: string; nodes?: string[]; recoverFile?: string },
): ClientProcess {
  const child = spawn(process.execPath, [CLIENT], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      DISPY_TEST_CLIENT: JSON.stringify({ host: scheduler.host, port: scheduler.port, secret: CLUSTER_SECRET, ...settings }),
    },
  });
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    for (const listener of listeners) listener();
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<{ code: number | null; result?: ClientResult; stderr: string }>((resolve) =>
    child.once('exit', (code) => {
      const line = stdout.split('\n').find((text) => text.startsWith('RESULT '));
      resolve({ code, result: line ? (JSON.parse(line.slice('RESULT '.length)) as ClientResult) : undefined, stderr });
    }),
  );
  const client: ClientProcess = {
    child,
    get stdout() {
      return stdout;
    },
    waitFor: (pattern) =>
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (!pattern.test(stdout)) return;
          listeners.delete(check);
          resolve();
        };
        listeners.add(check);
        check();
        void done.then(() => {
          if (listeners.delete(check)) reject(new Error(`client exited before printing ${pattern}: ${stdout}\n${stderr}`));
        });
      }),
    done,
  };
  clients.push(client);
  return client;
}

/** Two nodes of 2 CPUs on one port, and a dispyscheduler that manages them (with `args` more flags). */
async function twoNodesAndScheduler(args: string[] = []): Promise<{ nodes: NodeProcess[]; scheduler: SchedulerProcess }> {
  const port = await freePort('127.0.123.2');
  const nodes = await Promise.all(
    ['127.0.123.2', '127.0.123.3'].map((host) => startNode({ host, port, cpus: 2, secret: NODE_SECRET, args: ['--ping-interval', '1'] })),
  );
  const scheduler = await startScheduler({
    host: '127.0.123.1',
    nodes: nodes.map((node) => node.host),
    nodePort: port,
    nodeSecret: NODE_SECRET,
    clusterSecret: CLUSTER_SECRET,
    args: ['--ping-interval', '1', '--debug', ...args],
  });
  return { nodes, scheduler };
}

/** Waits (polling, at most 20 s) until `condition` holds. */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  expect(condition()).toBe(true);
}

const expected = (count: number, factor: number) => Array.from({ length: count }, (_, n) => n * factor);

describe('dispyscheduler', () => {
  it('runs three client programs at once on two shared nodes, each with its own correct results', async () => {
    const { scheduler } = await twoNodesAndScheduler();
    const programs = [3, 5, 7].map((factor) => ({ factor, client: runClient(scheduler, { factor, count: 40, sleepMs: 20 }) }));
    for (const { factor, client } of programs) {
      const { code, result, stderr } = await client.done;
      expect(code, stderr).toBe(0);
      expect(result!.results).toEqual(expected(40, factor));
      expect(result!.finished).toBe(40);
    }
    // Both nodes served, one connection each, for all three computations.
    const hosts = new Set(
      await Promise.all(programs.map(async ({ client }) => (await client.done).result!.hosts)).then((all) => all.flat()),
    );
    expect([...hosts].sort()).toEqual(['127.0.123.2', '127.0.123.3']);
    expect(scheduler.log.match(/authenticated/g)?.length).toBe(3);
  });

  it('refuses a wrong cluster secret with a clear error, while a client with the right one is served', async () => {
    const { scheduler } = await twoNodesAndScheduler();
    const right = runClient(scheduler, { factor: 2, count: 10 });
    const wrong = runClient(scheduler, { factor: 2, count: 3, secret: 'not the cluster secret at all' });
    const refused = await wrong.done;
    expect(refused.code).toBe(0);
    expect(refused.result!.finished).toBe(0);
    expect(refused.result!.exceptions).toHaveLength(1);
    expect(refused.result!.exceptions[0]).toMatch(
      `could not use dispyscheduler: dispyscheduler ${scheduler.host}:${scheduler.port}'s secret differs from this client's (the secret's TLS handshake failed`,
    );
    const served = await right.done;
    expect(served.result!.results).toEqual(expected(10, 2));
    await scheduler.waitForLog(/its secret differs from this dispyscheduler's \(the secret's TLS handshake failed\); refused/);
  });

  it('keeps the computation of a client killed mid-run for its grace period, then terminates its jobs; another client gets the nodes; recoverJobs collects the results', async () => {
    const { scheduler, nodes } = await twoNodesAndScheduler(['--client-grace', '4']);
    const work = mkdtempSync(path.join(os.tmpdir(), 'dispy-killed-shared-client-'));
    try {
      const recoverFile = path.join(work, 'recover');
      // Two jobs end 2.5 s after they start (after the client's death), two would run ten minutes.
      const doomed = runClient(scheduler, { factor: 1, count: 4, sleepMs: [2_500, 2_500, 600_000, 600_000], recoverFile });
      await doomed.waitFor(/RUNNING/);
      // The recover file names the scheduler as where the four jobs are (it is flushed in batches).
      await until(() => existsSync(recoverFile) && readFileSync(recoverFile, 'utf8').split('"state":"running"').length === 5);
      expect(readFileSync(recoverFile, 'utf8')).toContain(`"host":"${scheduler.host}","port":${scheduler.port},"name":"dispyscheduler"`);
      const other = runClient(scheduler, { factor: 11, count: 8 });
      await scheduler.waitForLog(/authenticated[\s\S]*authenticated/);
      doomed.child.kill('SIGKILL');
      await scheduler.waitForLog(/disconnected.*keeping its 1 computation for 4 s, for it to reconnect/);
      await scheduler.waitForLog(/was not back within 4 s; closing it and terminating its 2 jobs not done/);
      // The other client ran on the freed CPUs: its jobs could not have run while the ten-minute jobs held them.
      const { code, result, stderr } = await other.done;
      expect(code, stderr).toBe(0);
      expect(result!.results).toEqual(expected(8, 11));
      for (const node of nodes) expect(node.log).not.toMatch(/unexpected/);

      // The results the dead client never got: from the scheduler, with the cluster secret.
      const recovered = await recoverJobs(recoverFile, { secret: CLUSTER_SECRET, timeout: 10 });
      expect(recovered.map((job) => [job.id, job.status, job.result])).toEqual([
        [1, DispyJob.Finished, 0],
        [2, DispyJob.Finished, 1],
        [3, DispyJob.Terminated, undefined],
        [4, DispyJob.Terminated, undefined],
      ]);
      expect(recovered[2]!.exception).toMatch(/grace period \(4 s\)/);
      // Collected: the scheduler forgot them, and the file is gone.
      expect(existsSync(recoverFile)).toBe(false);
      await scheduler.waitForLog(/took computation .* back \(replies only\): 0 jobs held, 4 replies resent/);
      await until(
        () =>
          !existsSync(path.join(scheduler.destPath, 'saved-replies')) ||
          readdirSync(path.join(scheduler.destPath, 'saved-replies')).length === 0,
      );
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 60_000);

  it('a client idle while the scheduler restarts sets its computation up again at the next job; with no scheduler, its jobs fail clearly', async () => {
    const { scheduler, nodes } = await twoNodesAndScheduler();
    const cluster = new SharedJobCluster((n: number) => n + 1, {
      schedulerNode: scheduler.host,
      schedulerPort: scheduler.port,
      secret: CLUSTER_SECRET,
      loglevel: 'silent',
      recoverFile: false,
    });
    clusters.push(cluster);
    expect(await cluster.submit(1).wait()).toBe(2);
    // SIGTERM: it hangs up on its clients, closes their computations and exits 0 (not the SIGKILL 5 s later).
    await scheduler.stop('SIGTERM');
    expect(scheduler.child.exitCode).toBe(0);
    expect(scheduler.log).toMatch(/SIGTERM: stopping/);
    // Nothing running and nothing waiting: the cluster is idle while the scheduler is away.
    expect(await cluster.wait(0)).toBe(true);
    const away = cluster.submit(5);
    expect(await away.wait()).toBeUndefined();
    expect(away.status).toBe(DispyJob.Cancelled);
    expect(away.exception).toMatch(/could not use dispyscheduler: .*(ECONNREFUSED|closed)/);
    const again = await startScheduler({
      host: scheduler.host,
      port: scheduler.port,
      nodes: nodes.map((node) => node.host),
      nodePort: nodes[0]!.port,
      nodeSecret: NODE_SECRET,
      clusterSecret: CLUSTER_SECRET,
      args: ['--ping-interval', '1'],
    });
    const back = cluster.submit(41);
    expect(await back.wait()).toBe(42);
    expect(back.status).toBe(DispyJob.Finished);
    await cluster.close();
    await again.waitForLog(/disconnected/);
  }, 60_000);

  it('a node killed under the scheduler: a reentrant cluster runs its jobs elsewhere, another ends those it had there Cancelled', async () => {
    // The scheduler's pulses: a node silent for 5 of them is dead at once (else it is waited for during its zombie interval).
    const { scheduler, nodes } = await twoNodesAndScheduler(['--pulse-interval', '1']);
    const doomed = nodes[1]!;
    const sleepy = (n: number) => new Promise<number>((resolve) => setTimeout(() => resolve(n * 10), 3000));
    let running = 0;
    let nodesUp = 0;
    let resolveRunning!: () => void;
    let resolveUp!: () => void;
    const allRunning = new Promise<void>((resolve) => (resolveRunning = resolve));
    const allUp = new Promise<void>((resolve) => (resolveUp = resolve));
    const clusterStatus = (status: number) => {
      if (status === DispyJob.Running && ++running === 4) resolveRunning();
      if (status === DispyNode.Initialized && ++nodesUp === 4) resolveUp();
    };
    for (const reentrant of [true, false]) {
      clusters.push(
        new SharedJobCluster(sleepy, {
          schedulerNode: scheduler.host,
          schedulerPort: scheduler.port,
          secret: CLUSTER_SECRET,
          loglevel: 'silent',
          recoverFile: false,
          reentrant,
          clusterStatus,
        }),
      );
    }
    const [reentrantCluster, plainCluster] = clusters as [SharedJobCluster<typeof sleepy>, SharedJobCluster<typeof sleepy>];
    // Both nodes serve both clusters before any job is queued: the least-loaded node takes each job, two on each.
    await allUp;
    const reentrantJobs = [1, 2].map((n) => reentrantCluster.submit(n));
    const plainJobs = [3, 4].map((n) => plainCluster.submit(n));
    await allRunning;
    // Four jobs on four CPUs: two of them on the node about to die.
    const wereOn = new Map([...reentrantJobs, ...plainJobs].map((job) => [job, job.ipAddr]));
    expect([...wereOn.values()].filter((host) => host === doomed.host)).toHaveLength(2);
    doomed.child.kill('SIGKILL');
    expect(await Promise.all(reentrantJobs.map((job) => job.wait()))).toEqual([10, 20]);
    expect(reentrantJobs.map((job) => job.status)).toEqual([DispyJob.Finished, DispyJob.Finished]);
    await plainCluster.wait();
    for (const [index, job] of plainJobs.entries()) {
      if (wereOn.get(job) === doomed.host) {
        expect(job.status).toBe(DispyJob.Cancelled);
        expect(job.exception).toContain(doomed.host);
      } else {
        expect(job.status).toBe(DispyJob.Finished);
        expect(job.result).toBe((index + 3) * 10);
      }
    }
  }, 60_000);

  it('takes depends files of the cluster and of single jobs to the nodes, and a job reads them there', async () => {
    const { scheduler } = await twoNodesAndScheduler();
    const files = mkdtempSync(path.join(os.tmpdir(), 'dispy-shared-files-'));
    try {
      writeFileSync(path.join(files, 'cluster.txt'), 'of the cluster');
      writeFileSync(path.join(files, 'job.txt'), 'of one job');
      const read = (name: string) => require('node:fs').readFileSync(name, 'utf8') as string;
      const cluster = new SharedJobCluster(read, {
        schedulerNode: scheduler.host,
        schedulerPort: scheduler.port,
        secret: CLUSTER_SECRET,
        loglevel: 'silent',
        recoverFile: false,
        depends: [path.join(files, 'cluster.txt')],
      });
      clusters.push(cluster);
      expect(await cluster.submit('cluster.txt').wait()).toBe('of the cluster');
      const withFile = cluster.submitJob({ args: ['job.txt'], depends: [path.join(files, 'job.txt')] });
      expect(await withFile.wait()).toBe('of one job');
      // A later job does not see it: it is removed after its job (and never was on the other node).
      const after = cluster.submit('job.txt');
      await after.wait();
      expect(after.status).toBe(DispyJob.Terminated);
      expect(after.exception).toMatch(/ENOENT/);
    } finally {
      rmSync(files, { recursive: true, force: true });
    }
  });

  it("shares the nodes between clients by turns: one client's long queue does not hold back another's few jobs", async () => {
    const { scheduler } = await twoNodesAndScheduler();
    const options = {
      schedulerNode: scheduler.host,
      schedulerPort: scheduler.port,
      secret: CLUSTER_SECRET,
      loglevel: 'silent',
      recoverFile: false,
    } as const;
    const slow = (n: number) => new Promise<number>((resolve) => setTimeout(() => resolve(n), 20));
    // The busy one is set up on both nodes first: without turns, it would always be served first.
    const busy = new SharedJobCluster(slow, options);
    clusters.push(busy);
    await busy.submit(1).wait();
    await until(() => busy.status().nodes.length === 2);
    const few = new SharedJobCluster((n: number) => -n, options);
    clusters.push(few);
    await few.submit(1).wait();
    await until(() => few.status().nodes.length === 2);
    const many = Array.from({ length: 400 }, (_, n) => busy.submit(n));
    const mine = Array.from({ length: 10 }, (_, n) => few.submit(n + 1));
    expect(await Promise.all(mine.map((job) => job.wait()))).toEqual(Array.from({ length: 10 }, (_, n) => -(n + 1)));
    // 400 jobs of 20 ms on 4 CPUs take 2 s; the few were served between them, not after them.
    expect(busy.status().jobsPending).toBeGreaterThan(200);
    expect(await busy.wait(60)).toBe(true);
    expect(many.every((job, n) => job.result === n)).toBe(true);
  }, 60_000);

  it('relays when jobs start: jobs sent ahead wait at their node as queued, and only those a worker started are Running', async () => {
    const { scheduler } = await twoNodesAndScheduler();
    const sleep = async (ms: number) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return ms;
    };
    let runningSaid = 0;
    const cluster = new SharedJobCluster(sleep, {
      schedulerNode: scheduler.host,
      schedulerPort: scheduler.port,
      secret: CLUSTER_SECRET,
      loglevel: 'silent',
      recoverFile: false,
      clusterStatus: (status: number) => {
        if (status === DispyJob.Running) runningSaid++;
      },
    });
    clusters.push(cluster);
    await until(() => cluster.status().nodes.length === 2);
    // Short jobs first: the nodes are then sent jobs ahead (two per CPU at least).
    await Promise.all(Array.from({ length: 8 }, () => cluster.submit(0).wait()));
    const long = Array.from({ length: 8 }, () => cluster.submit(1_500));
    const sum = (field: 'busy' | 'queued') => cluster.status().nodes.reduce((total, node) => total + node[field], 0);
    await until(() => sum('busy') === 4 && sum('queued') === 4);
    expect(long.filter((job) => job.status === DispyJob.Running)).toHaveLength(4);
    for (const node of cluster.status().nodes) expect(node.busy).toBeLessThanOrEqual(node.cpus);
    expect(await cluster.wait(30)).toBe(true);
    expect(runningSaid).toBe(16);
    expect([sum('busy'), sum('queued')]).toEqual([0, 0]);
  }, 60_000);
});
