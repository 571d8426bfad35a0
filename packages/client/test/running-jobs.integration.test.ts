import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DispyJob, JobCluster, NodeAllocate, type DispyNode } from '../src/index.js';
import { startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';
import { clusterMaker } from './cluster-on.js';

const clusters: JobCluster[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 5 })));
  await stopAllNodes();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const clusterOn = clusterMaker(clusters);

/** Runs on the node: notes its run in `runs` (one line per run, so a job run twice shows), then sleeps `ms`. */
async function noted(tag: string, ms: number, runs: string) {
  require('node:fs').appendFileSync(runs, `${tag}\n`);
  await new Promise((resolve) => setTimeout(resolve, ms));
  return tag;
}

function runsFile(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-runs-'));
  dirs.push(dir);
  return path.join(dir, 'runs');
}

function nodeAt(cluster: JobCluster, host: string): DispyNode | undefined {
  return cluster.status().nodes.find((node) => node.ipAddr === host);
}

/** Four short jobs, so that the node is sent jobs ahead (its jobs take < 5 ms), then four of `ms` on its 2 CPUs. */
async function shortThenLong(cluster: JobCluster<typeof noted>, runs: string, ms: number): Promise<DispyJob[]> {
  await Promise.all(Array.from({ length: 4 }, (_, i) => cluster.submit(`short${i}`, 0, runs).wait()));
  return Array.from({ length: 4 }, (_, i) => cluster.submit(`long${i}`, ms, runs));
}

describe('jobs are Running when a worker starts them', () => {
  it('counts jobs sent ahead as queued at the node, not busy nor Running, and nodeJobs lists only those running', async () => {
    const node = await startNode({ host: '127.0.13.1', cpus: 2 });
    const runs = runsFile();
    const statuses: number[] = [];
    const cluster = clusterOn(noted, node, { clusterStatus: (status: number) => statuses.push(status) });
    const long = await shortThenLong(cluster, runs, 1_500);
    await vi.waitFor(() => expect(nodeAt(cluster, node.host)?.queued).toBe(2), { timeout: 10_000 });
    await vi.waitFor(() => expect(nodeAt(cluster, node.host)?.busy).toBe(2), { timeout: 10_000 });
    expect(long.filter((job) => job.status === DispyJob.Running)).toHaveLength(2);
    expect(long.filter((job) => job.status === DispyJob.Created)).toHaveLength(2);
    const running = await cluster.nodeJobs(node.host);
    expect(running.sort((a, b) => String(a.id).localeCompare(String(b.id)))).toEqual(
      long.filter((job) => job.status === DispyJob.Running).sort((a, b) => String(a.id).localeCompare(String(b.id))),
    );
    for (const job of running) expect(job.startTime).toBeGreaterThan(0);
    await cluster.wait();
    const done = nodeAt(cluster, node.host)!;
    expect([done.busy, done.queued, done.jobsDone]).toEqual([0, 0, 8]);
    // Every job was said Running once, each before it finished.
    expect(statuses.filter((status) => status === DispyJob.Running)).toHaveLength(8);
    expect(statuses.filter((status) => status === DispyJob.Finished)).toHaveLength(8);
  });
});

describe('load balance after short jobs', () => {
  it('moves jobs sent ahead to a node allocated later, which has idle CPUs: the long jobs split, and none runs twice', async () => {
    const [a, b] = await Promise.all([startNode({ host: '127.0.13.2', cpus: 2 }), startNode({ host: '127.0.13.3', cpus: 2 })]);
    const runs = runsFile();
    const cluster = new JobCluster(noted, {
      nodes: [new NodeAllocate(a.host, { port: a.port })],
      ipAddr: '127.0.0.1',
      port: 0,
      loglevel: 'silent',
    });
    clusters.push(cluster);
    const long = await shortThenLong(cluster, runs, 2_000);
    // All four are on a: two run, two wait there.
    await vi.waitFor(() => expect([nodeAt(cluster, a.host)?.busy, nodeAt(cluster, a.host)?.queued]).toEqual([2, 2]), { timeout: 10_000 });
    expect(await cluster.allocateNode(new NodeAllocate(b.host, { port: b.port }))).toBe(0);
    await cluster.wait();
    expect(long.map((job) => job.status)).toEqual(Array(4).fill(DispyJob.Finished));
    expect(long.filter((job) => job.ipAddr === a.host)).toHaveLength(2);
    expect(long.filter((job) => job.ipAddr === b.host)).toHaveLength(2);
    // Each job ran once, on one node.
    const lines = readFileSync(runs, 'utf8').trim().split('\n').sort();
    expect(lines).toEqual([...Array.from({ length: 4 }, (_, i) => `long${i}`), ...Array.from({ length: 4 }, (_, i) => `short${i}`)]);
    expect(nodeAt(cluster, a.host)!.jobsDone + nodeAt(cluster, b.host)!.jobsDone).toBe(8);
  });
});
