/*
 * Issue 11, "A node serves several computations at once": clusters of one program and of two
 * programs on one node at the same time, the fair share of its CPUs, `exclusive`, --max-clients,
 * and the race of two clusters reaching a free node at once. Nodes of this file listen on
 * 127.0.150.*.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DispyJob, JobCluster, NodeAllocate } from '../src/index.js';
import { startNode, stopAllNodes, type NodeProcess } from '../../../testing/dispynode-process.mjs';
import { clusterMaker } from './cluster-on.js';

const SHARING_CLIENT = fileURLToPath(new URL('./fixtures/sharing-client.mjs', import.meta.url));
const SECRET = 'share this node';
const clusters: JobCluster[] = [];
const children: ChildProcess[] = [];
const clusterOn = clusterMaker(clusters);

afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 5 })));
  await stopAllNodes();
});

/** When a job ran on its node (ms), as the job itself saw it. */
interface Ran {
  square: number;
  start: number;
  end: number;
}

/** Busy for `ms` of wall time on the node; returns when it ran. */
function busy(i: number, ms: number): Ran {
  const start = Date.now();
  while (Date.now() - start < ms);
  return { square: i * i, start, end: Date.now() };
}

function nodeOn(host: string, args: string[] = []): Promise<NodeProcess> {
  return startNode({ host, secret: SECRET, cpus: 2, args });
}

function sharing(node: NodeProcess, extra: Record<string, unknown> = {}): JobCluster<typeof busy> {
  return clusterOn(busy, node, { secret: SECRET, pingInterval: 0.2, ...extra });
}

async function results(jobs: DispyJob<Ran>[]): Promise<Ran[]> {
  const ran = await Promise.all(jobs.map((job) => job.wait()));
  for (const job of jobs) expect(job.status, `${job.exception ?? ''}`).toBe(DispyJob.Finished);
  return ran as Ran[];
}

/** Most jobs running at once over these runs (a start at the very end of another counts after it). */
function mostAtOnce(runs: Ran[]): number {
  const events = runs.flatMap((run) => [
    [run.start, 1],
    [run.end, -1],
  ]);
  events.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
  let now = 0;
  let most = 0;
  for (const [, step] of events) most = Math.max(most, (now += step!));
  return most;
}

/** Time of `runs` within [from, to] (ms). */
function within(runs: Ran[], from: number, to: number): number {
  return runs.reduce((sum, run) => sum + Math.max(0, Math.min(run.end, to) - Math.max(run.start, from)), 0);
}

/** Starts the sharing client program; resolves with its results once it exits 0. */
function program(node: NodeProcess, count: number, ms: number, extra: Record<string, unknown> = {}): Promise<Ran[]> {
  const child = spawn(process.execPath, [SHARING_CLIENT, node.host, String(node.port), String(count), String(ms), JSON.stringify(extra)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DISPY_SECRET: SECRET },
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      if (code === 0) resolve(JSON.parse(stdout) as Ran[]);
      else reject(new Error(`the client program exited ${code}:\n${stderr}`));
    });
  });
}

describe('a node serves several computations at once', () => {
  it('two JobClusters of one program, on one node at the same time, both finish; never more jobs at once than its CPUs', async () => {
    const node = await nodeOn('127.0.150.1');
    const first = sharing(node);
    const second = sharing(node);
    const a = Array.from({ length: 8 }, (_, i) => first.submit(i, 150));
    const b = Array.from({ length: 8 }, (_, i) => second.submit(i + 100, 150));
    const [ranA, ranB] = await Promise.all([results(a), results(b)]);
    expect(ranA.map((run) => run.square)).toEqual(Array.from({ length: 8 }, (_, i) => i * i));
    expect(ranB.map((run) => run.square)).toEqual(Array.from({ length: 8 }, (_, i) => (i + 100) ** 2));
    // At the same time: some job of each ran while a job of the other did.
    expect(within(ranB, Math.min(...ranA.map((run) => run.start)), Math.max(...ranA.map((run) => run.end)))).toBeGreaterThan(0);
    expect(mostAtOnce([...ranA, ...ranB])).toBeLessThanOrEqual(2);
    // Each cluster's view counts its own jobs only.
    expect(first.status().jobsPending).toBe(0);
    expect(first.status().nodes[0]!.jobsDone).toBe(8);
    expect(second.status().nodes[0]!.jobsDone).toBe(8);
    await Promise.all([first.close(), second.close()]);
  });

  it('two separate programs on one node at the same time both finish, sharing its CPUs', async () => {
    const node = await nodeOn('127.0.150.2');
    const [ranA, ranB] = await Promise.all([program(node, 8, 150), program(node, 8, 150)]);
    expect(ranA.map((run) => run.square)).toEqual(Array.from({ length: 8 }, (_, i) => i * i));
    expect(ranB.map((run) => run.square)).toEqual(Array.from({ length: 8 }, (_, i) => i * i));
    expect(mostAtOnce([...ranA, ...ranB])).toBeLessThanOrEqual(2);
  });

  it('a cluster does not pile its jobs on a node busy with another cluster while another node of its has free CPUs', async () => {
    const [busyNode, idleNode] = await Promise.all([nodeOn('127.0.150.9'), nodeOn('127.0.150.10')]);
    const other = sharing(busyNode);
    const load = Array.from({ length: 16 }, (_, i) => other.submit(i, 300));
    // The cluster is set up on the busy node first (a job as long as the others, so that it sends one job per CPU).
    const mine = sharing(busyNode);
    expect((await mine.submit(0, 800).wait())!.square).toBe(0);
    await mine.allocateNode(new NodeAllocate(idleNode.host, { port: idleNode.port }));
    await vi.waitFor(() => expect(mine.status().nodes).toHaveLength(2), { timeout: 15_000 });
    expect(load.some((job) => !job.isDone)).toBe(true);
    // The busy node is this cluster's by half (1 CPU): one job goes there, two to the idle node.
    const jobs = Array.from({ length: 3 }, (_, i) => mine.submit(i, 800));
    await results(jobs);
    const on = (host: string) => jobs.filter((job) => job.ipAddr === host).length;
    expect({ busy: on(busyNode.host), idle: on(idleNode.host) }).toEqual({ busy: 1, idle: 2 });
    await results(load);
  });

  it('Fair share, measured: two clusters that both keep the node busy get 40% to 60% of its CPU time each', async () => {
    const node = await nodeOn('127.0.150.3');
    const first = sharing(node);
    // The first has a long head start: 100 jobs queued before the second comes with its own.
    const a = Array.from({ length: 100 }, (_, i) => first.submit(i, 60));
    await a[3]!.wait();
    const second = sharing(node);
    const b = Array.from({ length: 30 }, (_, i) => second.submit(i, 60));
    const ranB = await results(b);
    const ranA = await results(a);
    // While both had jobs on the node: from the second's first job to its last.
    const from = Math.min(...ranB.map((run) => run.start));
    const to = Math.max(...ranB.map((run) => run.end));
    const [timeA, timeB] = [within(ranA, from, to), within(ranB, from, to)];
    const shareB = timeB / (timeA + timeB);
    expect(shareB, `first ${timeA} ms, second ${timeB} ms between ${from} and ${to}`).toBeGreaterThanOrEqual(0.4);
    expect(shareB, `first ${timeA} ms, second ${timeB} ms between ${from} and ${to}`).toBeLessThanOrEqual(0.6);
  });

  it('an exclusive cluster waits for a running one, then has the node alone; a later one waits for it', async () => {
    const node = await nodeOn('127.0.150.4');
    const running = sharing(node);
    const before = Array.from({ length: 4 }, (_, i) => running.submit(i, 300));
    await before[0]!.wait(); // set up and running
    const alone = sharing(node, { exclusive: true });
    const mine = Array.from({ length: 4 }, (_, i) => alone.submit(i, 300));
    const ranBefore = await results(before);
    await running.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const later = sharing(node);
    const after = Array.from({ length: 2 }, (_, i) => later.submit(i, 50));
    const ranMine = await results(mine);
    await alone.close();
    const ranAfter = await results(after);
    expect(Math.min(...ranMine.map((run) => run.start))).toBeGreaterThanOrEqual(Math.max(...ranBefore.map((run) => run.end)));
    expect(Math.min(...ranAfter.map((run) => run.start))).toBeGreaterThanOrEqual(Math.max(...ranMine.map((run) => run.end)));
    // It was told "not now" (a node that has a computation alone says it is busy to discovery: the later one did not ask).
    expect(node.log).toMatch(/an exclusive one waits until none does/);
  });

  it('--max-clients 1: a second cluster waits (the node says it is busy), then is set up once the first closes', async () => {
    const node = await nodeOn('127.0.150.5', ['--max-clients', '1']);
    const first = sharing(node);
    const a = Array.from({ length: 4 }, (_, i) => first.submit(i, 300));
    await a[0]!.wait();
    const second = sharing(node);
    const b = Array.from({ length: 2 }, (_, i) => second.submit(i, 50));
    await a[1]!.wait();
    // The node answers discovery "busy" while it serves its --max-clients: the second waits.
    expect(b.map((job) => job.status)).toEqual([DispyJob.Created, DispyJob.Created]);
    expect(second.status().nodes).toEqual([]);
    const ranA = await results(a);
    await first.close();
    const ranB = await results(b);
    expect(Math.min(...ranB.map((run) => run.start))).toBeGreaterThanOrEqual(Math.max(...ranA.map((run) => run.end)));
    // close() without a timeout does not hang.
    await second.close();
  });
});

describe('the refused-setup race: two clusters reach a free node at the same moment', () => {
  it('in one program, with --max-clients 1: the loser tries again and both finish; close() without timeout returns', async () => {
    const node = await nodeOn('127.0.150.6', ['--max-clients', '1']);
    const first = sharing(node);
    const second = sharing(node);
    const a = Array.from({ length: 3 }, (_, i) => first.submit(i, 100));
    const b = Array.from({ length: 3 }, (_, i) => second.submit(i, 100));
    // Whichever wins, it closes once done, and the other is set up then.
    const closeWhenDone = async (cluster: JobCluster<typeof busy>, jobs: DispyJob<Ran>[]) => {
      await results(jobs);
      await cluster.close();
    };
    await Promise.all([closeWhenDone(first, a), closeWhenDone(second, b)]);
    expect(node.log).toMatch(/not now/);
  });

  it('in one program, with no limit: both are set up at once', async () => {
    const node = await nodeOn('127.0.150.7');
    const first = sharing(node);
    const second = sharing(node);
    const a = first.submit(1, 300);
    const b = second.submit(2, 300);
    const [ranA, ranB] = await results([a, b]);
    expect(ranA!.start < ranB!.end && ranB!.start < ranA!.end).toBe(true);
    await Promise.all([first.close(), second.close()]);
    expect(node.log).not.toMatch(/not now/);
  });

  it('in two programs started together, with --max-clients 1: both finish', async () => {
    const node = await nodeOn('127.0.150.8', ['--max-clients', '1']);
    const [ranA, ranB] = await Promise.all([program(node, 3, 100), program(node, 3, 100)]);
    expect(ranA.map((run) => run.square)).toEqual([0, 1, 4]);
    expect(ranB.map((run) => run.square)).toEqual([0, 1, 4]);
    // One ran after the other.
    const [early, late] = ranA[0]!.start < ranB[0]!.start ? [ranA, ranB] : [ranB, ranA];
    expect(Math.min(...late.map((run) => run.start))).toBeGreaterThanOrEqual(Math.max(...early.map((run) => run.end)));
  });
});
