import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DispyJob, DispyNode, JobCluster, NodeAllocate } from '../src/index.js';
import { freePort, startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';
import { clusterMaker } from './cluster-on.js';

const run = promisify(execFile);
const clusters: JobCluster[] = [];

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 5 })));
  await stopAllNodes();
});

const clusterOn = clusterMaker(clusters);

/** Runs on the node: sleeps `ms`, returns when it ran (for measuring concurrency). */
async function sleeper(ms: number) {
  const start = Date.now();
  await new Promise((resolve) => setTimeout(resolve, ms));
  return { start, end: Date.now() };
}

/** Resolves once `count` UDP datagrams (a cluster's discovery pings) reached `host:port`. */
async function datagramsTo(host: string, port: number, count: number): Promise<void> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => resolve());
  });
  try {
    let seen = 0;
    await new Promise<void>((resolve) => socket.on('message', () => ++seen === count && resolve()));
  } finally {
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}

/** The most intervals that overlap at any instant. */
function mostAtOnce(intervals: Array<{ start: number; end: number }>): number {
  const edges = intervals
    .flatMap(
      ({ start, end }) =>
        [
          [start, 1],
          [end, -1],
        ] as const,
    )
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let most = 0;
  for (const [, delta] of edges) most = Math.max(most, (now += delta));
  return most;
}

describe('cluster control of jobs and nodes', () => {
  it('cancels a sleeping job and lists the jobs running on a node', async () => {
    const node = await startNode({ host: '127.0.7.2', cpus: 2 });
    const cluster = clusterOn(sleeper, node);
    const jobs = [cluster.submit(30_000), cluster.submit(30_000)];
    await vi.waitFor(() => expect(jobs.every((job) => job.status === DispyJob.Running)).toBe(true), { timeout: 10_000 });
    expect(new Set(await cluster.nodeJobs(node.host))).toEqual(new Set(jobs));
    const [dispyNode] = cluster.status().nodes;
    expect(await cluster.nodeJobs(dispyNode!)).toHaveLength(2);
    expect(await Promise.all(jobs.map((job) => cluster.cancel(job)))).toEqual([0, 0]);
    await Promise.all(jobs.map((job) => job.wait()));
    expect(jobs.map((job) => job.status)).toEqual([DispyJob.Cancelled, DispyJob.Cancelled]);
    expect(await cluster.nodeJobs(node.host)).toEqual([]);
    expect((await cluster.submit(1).wait())!.end).toBeGreaterThan(0);
  });

  it('changes the CPUs it uses on a node, and with them how many jobs run at once', async () => {
    const node = await startNode({ host: '127.0.7.3', cpus: 2 });
    const cluster = clusterOn(sleeper, node);
    const warm = await Promise.all([cluster.submit(300), cluster.submit(300)].map((job) => job.wait()));
    expect(mostAtOnce(warm as never)).toBe(2);
    expect(await cluster.setNodeCpus(node.host, 1)).toBe(1);
    const one = await Promise.all(Array.from({ length: 4 }, () => cluster.submit(200)).map((job) => job.wait()));
    expect(mostAtOnce(one as never)).toBe(1);
    expect(cluster.status().nodes[0]!.cpus).toBe(1);
    expect(await cluster.setNodeCpus(node.host, -2)).toBe(-1); // would leave no CPU
    expect(await cluster.setNodeCpus(node.host, 2)).toBe(2);
    const two = await Promise.all(Array.from({ length: 4 }, () => cluster.submit(300)).map((job) => job.wait()));
    expect(mostAtOnce(two as never)).toBe(2);
    expect(await cluster.setNodeCpus('127.9.9.9', 1)).toBe(-1);
  });

  it('honours a NodeAllocate subclass that refuses one node and limits another', async () => {
    const [refused, limited] = await Promise.all([startNode({ host: '127.0.7.4', cpus: 2 }), startNode({ host: '127.0.7.5', cpus: 2 })]);
    const asked: Array<[string, number, boolean]> = [];
    class Picky extends NodeAllocate {
      override allocate(_cluster: unknown, ipAddr: string, _name: string, cpus: number, availInfo?: { memory: number }): number {
        asked.push([ipAddr, cpus, (availInfo?.memory ?? 0) > 0]);
        return ipAddr === refused.host ? 0 : 1;
      }
    }
    const cluster = new JobCluster(sleeper, {
      nodes: [new Picky(refused.host, { port: refused.port }), new Picky(limited.host, { port: limited.port })],
      ipAddr: '127.0.0.1',
      port: 0,
      loglevel: 'silent',
    });
    clusters.push(cluster);
    const results = await Promise.all(Array.from({ length: 4 }, () => cluster.submit(200)).map((job) => job.wait()));
    expect(mostAtOnce(results as never)).toBe(1);
    expect(cluster.status().nodes.map((n) => [n.ipAddr, n.cpus])).toEqual([[limited.host, 1]]);
    expect(asked).toEqual(
      expect.arrayContaining([
        [refused.host, 2, true],
        [limited.host, 2, true],
      ]),
    );
  });

  it('uses a node started after the cluster, found by repeated pings', async () => {
    const first = await startNode({ host: '127.0.7.6', cpus: 1 });
    const latePort = await freePort('127.0.7.7');
    const cluster = new JobCluster(sleeper, {
      nodes: [new NodeAllocate(first.host, { port: first.port }), new NodeAllocate('127.0.7.7', { port: latePort })],
      ipAddr: '127.0.0.1',
      port: 0,
      pingInterval: 0.5,
      loglevel: 'silent',
    });
    clusters.push(cluster);
    await cluster.submit(10).wait();
    await datagramsTo('127.0.7.7', latePort, 3); // the cluster keeps pinging the missing node
    await startNode({ host: '127.0.7.7', port: latePort, cpus: 1 });
    await vi.waitFor(() => expect(cluster.status().nodes).toHaveLength(2), { timeout: 10_000 });
    const jobs = Array.from({ length: 6 }, () => cluster.submit(200));
    await cluster.wait();
    expect(new Set(jobs.map((job) => job.ipAddr))).toEqual(new Set(['127.0.7.6', '127.0.7.7']));
  });

  it('reports every transition of every job to clusterStatus exactly once and in order', async () => {
    const node = await startNode({ host: '127.0.7.8', cpus: 2 });
    const seen = new Map<DispyJob, number[]>();
    const nodeEvents: number[] = [];
    const cluster = clusterOn(
      (n: number) => {
        if (n % 5 === 4) throw new Error('every fifth fails');
        return n;
      },
      node,
      {
        clusterStatus: (status: number, _node: DispyNode | undefined, job: DispyJob | undefined) => {
          if (job) seen.set(job, [...(seen.get(job) ?? []), status]);
          else nodeEvents.push(status);
        },
      },
    );
    const jobs = Array.from({ length: 40 }, (_, i) => cluster.submit(i));
    const queuedThenCancelled = cluster.submit(99);
    await cluster.cancel(queuedThenCancelled);
    await cluster.wait();
    jobs.forEach((job, i) => {
      const last = i % 5 === 4 ? DispyJob.Terminated : DispyJob.Finished;
      expect(seen.get(job)).toEqual([DispyJob.Created, DispyJob.Running, last]);
    });
    expect(seen.get(queuedThenCancelled)).toEqual([DispyJob.Created, DispyJob.Cancelled]);
    expect(nodeEvents).toEqual([DispyNode.Initialized]);
  });

  it('kills a job past its timeout (Terminated, saying so) and serves the next', async () => {
    const node = await startNode({ host: '127.0.7.9', cpus: 1 });
    const cluster = clusterOn(
      (spin: boolean) => {
        while (spin);
        return 'next';
      },
      node,
      { jobTimeout: 30 },
    );
    const stuck = cluster.submitJob({ args: [true], timeout: 0.5 });
    await stuck.wait();
    expect(stuck.status).toBe(DispyJob.Terminated);
    expect(stuck.exception).toMatch(/timed out after 0\.5 s/);
    expect(await cluster.submit(false).wait()).toBe('next');
  });

  it('runs high-priority jobs submitted last before queued low-priority ones', async () => {
    const node = await startNode({ host: '127.0.7.10', cpus: 1 });
    const cluster = clusterOn(sleeper, node);
    const blocker = cluster.submit(500);
    await vi.waitFor(() => expect(blocker.status).toBe(DispyJob.Running));
    const low = Array.from({ length: 4 }, () => cluster.submitJob({ args: [20], priority: 0 }));
    const high = Array.from({ length: 2 }, () => cluster.submitJob({ args: [20], priority: 5 }));
    await cluster.wait();
    const lastHighStart = Math.max(...high.map((job) => job.result!.start));
    const firstLowStart = Math.min(...low.map((job) => job.result!.start));
    expect(lastHighStart).toBeLessThan(firstLowStart);
  });

  it('deallocates and closes nodes, and allocates one later', async () => {
    const [a, b] = await Promise.all([startNode({ host: '127.0.7.11', cpus: 1 }), startNode({ host: '127.0.7.12', cpus: 1 })]);
    const cluster = new JobCluster(sleeper, {
      nodes: [new NodeAllocate(a.host, { port: a.port })],
      ipAddr: '127.0.0.1',
      port: 0,
      loglevel: 'silent',
    });
    clusters.push(cluster);
    await cluster.submit(10).wait();
    expect(await cluster.allocateNode(new NodeAllocate(b.host, { port: b.port }))).toBe(0);
    await vi.waitFor(() => expect(cluster.status().nodes).toHaveLength(2), { timeout: 10_000 });
    expect(await cluster.deallocateNode(a.host)).toBe(0);
    const onB = await Promise.all(Array.from({ length: 3 }, () => cluster.submit(50)).map((job) => job.wait()));
    expect(onB).toHaveLength(3);
    expect(await cluster.closeNode(b.host)).toBe(0);
    expect(cluster.status().nodes.map((n) => n.ipAddr)).toEqual([a.host]);
    expect(await cluster.closeNode('127.9.9.9')).toBe(-1);
    // Node a is deallocated (still set up): a job waits, until a is allocated again.
    const waiting = cluster.submit(20);
    expect(await cluster.wait(0.5)).toBe(false);
    expect(waiting.status).toBe(DispyJob.Created);
    expect(await cluster.allocateNode(new NodeAllocate(a.host, { port: a.port }))).toBe(0);
    expect(await waiting.wait()).toBeDefined();
    expect(waiting.ipAddr).toBe(a.host);
  });

  it('pins jobs to a node by host name, and does not move them when that node goes away', async () => {
    const [a, b] = await Promise.all([startNode({ host: '127.0.0.1', cpus: 1 }), startNode({ host: '127.0.7.14', cpus: 1 })]);
    const cluster = new JobCluster(sleeper, {
      nodes: [new NodeAllocate(a.host, { port: a.port }), new NodeAllocate(b.host, { port: b.port })],
      ipAddr: '127.0.0.1',
      port: 0,
      loglevel: 'silent',
    });
    clusters.push(cluster);
    await vi.waitFor(() => expect(cluster.status().nodes).toHaveLength(2), { timeout: 10_000 });
    const byName = cluster.submitNode('localhost', 10);
    await byName.wait();
    expect(byName.ipAddr).toBe('127.0.0.1');
    const pinned = cluster.submitNode(b.host, 30_000);
    const waiting = cluster.submitNode(b.host, 10);
    await vi.waitFor(() => expect(pinned.status).toBe(DispyJob.Running));
    await b.stop();
    await pinned.wait();
    expect(pinned.status).toBe(DispyJob.Cancelled);
    expect(pinned.exception).toMatch(/127\.0\.7\.14.*went away/);
    // The job still waiting for that node keeps waiting for it; it is not run elsewhere.
    expect(await cluster.wait(1)).toBe(false);
    expect(waiting.status).toBe(DispyJob.Created);
    expect(await cluster.cancel(waiting)).toBe(0);
  });

  it("reports each node's availability at its pulse interval", async () => {
    const node = await startNode({ host: '127.0.7.15', cpus: 1 });
    const infos: Array<DispyNode['availInfo']> = [];
    const cluster = clusterOn(sleeper, node, {
      pulseInterval: 1,
      clusterStatus: (status: number, dispyNode: DispyNode | undefined) => {
        if (status === DispyNode.AvailInfo) infos.push(dispyNode!.availInfo);
      },
    });
    await cluster.submit(2500).wait();
    expect(infos.length).toBeGreaterThanOrEqual(2);
    expect(infos[0]).toEqual({ cpu: expect.any(Number), memory: expect.any(Number), disk: expect.any(Number), swap: expect.any(Number) });
    expect(infos[0]!.memory).toBeGreaterThan(0);
  });

  it('presumes a silent node dead after five pulse intervals and resubmits its jobs when reentrant', async () => {
    const [frozen, healthy] = await Promise.all([startNode({ host: '127.0.7.16', cpus: 1 }), startNode({ host: '127.0.7.17', cpus: 1 })]);
    const cluster = new JobCluster(sleeper, {
      nodes: [new NodeAllocate(frozen.host, { port: frozen.port })],
      ipAddr: '127.0.0.1',
      port: 0,
      pulseInterval: 1,
      reentrant: true,
      loglevel: 'silent',
    });
    clusters.push(cluster);
    const job = cluster.submit(1000);
    await vi.waitFor(() => expect(job.status).toBe(DispyJob.Running), { timeout: 10_000 });
    frozen.child.kill('SIGSTOP');
    await cluster.allocateNode(new NodeAllocate(healthy.host, { port: healthy.port }));
    try {
      await job.wait();
    } finally {
      frozen.child.kill('SIGCONT');
    }
    expect(job.status).toBe(DispyJob.Finished);
    expect(job.ipAddr).toBe(healthy.host);
  }, 30_000);

  it('runs the bounded-submit and custom-scheduler examples to completion', async () => {
    const node = await startNode({ host: '127.0.7.13', cpus: 2 });
    const example = (name: string) => fileURLToPath(new URL(`../../../examples/${name}`, import.meta.url));
    const bounded = await run(process.execPath, [example('bounded-submit.mjs'), node.host, String(node.port), '60'], { timeout: 60_000 });
    expect(JSON.parse(bounded.stdout)).toEqual({ finished: 60, sum: 70_210, mostInFlight: 12 });
    const custom = await run(process.execPath, [example('job-scheduler.mjs'), node.host, String(node.port), '20'], { timeout: 60_000 });
    expect(JSON.parse(custom.stdout)).toEqual({ finished: 20, runOn: { [node.host]: 20 } });
  });
});
