/*
 * Files and node operations through dispyscheduler, with real processes over loopback
 * (127.0.124.*): files sent by jobs reach their client, sendFile, allocateNode with per-node
 * depends and setup arguments, deallocateNode, closeNode and setNodeCpus (with and without
 * --cooperative).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DispyJob, NodeAllocate, SharedJobCluster, type SharedJobClusterOptions } from '@dispy/client';
import { freePort, startNode, stopAllNodes, type NodeProcess } from '../../../testing/dispynode-process.mjs';
import { startScheduler, stopAllSchedulers, type SchedulerProcess } from '../../../testing/dispyscheduler-process.mjs';

const NODE_SECRET = 'node secret of the node operations tests';
const CLUSTER_SECRET = 'cluster secret of the node operations tests';

const clusters: SharedJobCluster[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 1 })));
  await stopAllSchedulers();
  await stopAllNodes();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-nodeops-'));
  dirs.push(dir);
  return dir;
}

/** Two nodes of 2 CPUs and a dispyscheduler that manages them (with `args` more flags). */
async function twoNodesAndScheduler(args: string[] = []): Promise<{ nodes: NodeProcess[]; scheduler: SchedulerProcess }> {
  const port = await freePort('127.0.124.2');
  const nodes = await Promise.all(
    ['127.0.124.2', '127.0.124.3'].map((host) => startNode({ host, port, cpus: 2, secret: NODE_SECRET, args: ['--ping-interval', '1'] })),
  );
  const scheduler = await startScheduler({
    host: '127.0.124.1',
    nodes: nodes.map((node) => node.host),
    nodePort: port,
    nodeSecret: NODE_SECRET,
    clusterSecret: CLUSTER_SECRET,
    args: ['--ping-interval', '1', '--debug', ...args],
  });
  return { nodes, scheduler };
}

function shared<F extends (...args: never[]) => unknown>(
  scheduler: SchedulerProcess,
  computation: F,
  options: SharedJobClusterOptions = {},
): SharedJobCluster<F> {
  const cluster = new SharedJobCluster(computation, {
    schedulerNode: scheduler.host,
    schedulerPort: scheduler.port,
    secret: CLUSTER_SECRET,
    loglevel: 'silent',
    recoverFile: false,
    ...options,
  });
  clusters.push(cluster);
  return cluster;
}

/** Waits (polling, at most 20 s) until `condition` holds. */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  expect(condition()).toBe(true);
}

describe('dispyscheduler: files and node operations', () => {
  it('brings files sent by jobs to their client under its rules (confined, sizes), keeping nothing of them', async () => {
    const { scheduler } = await twoNodesAndScheduler();
    const outDir = tempDir();
    const cluster = shared(
      scheduler,
      async (name: string, bytes: number) => {
        const fs = require('node:fs');
        const pathOf = require('node:path');
        fs.mkdirSync(pathOf.dirname(name), { recursive: true });
        fs.writeFileSync(name, Buffer.alloc(bytes, 7));
        try {
          return await dispySendFile(name);
        } catch (error) {
          return (error as Error).message;
        }
      },
      { fileDir: outDir, maxFileSize: 5 * 1024 * 1024 },
    );
    // 3 MiB: a chunk, then the rest, relayed as they come.
    expect(await cluster.submit('results/big.bin', 3 * 1024 * 1024).wait()).toBe(0);
    const arrived = readFileSync(path.join(outDir, 'results', 'big.bin'));
    expect(arrived.length).toBe(3 * 1024 * 1024);
    expect(arrived.every((byte) => byte === 7)).toBe(true);
    // The client's limits and rules, as from a node.
    expect(await cluster.submit('huge.bin', 6 * 1024 * 1024).wait()).toMatch(/exceeds the size limit of 5242880 bytes/);
    expect(await cluster.submit('node_modules/evil.js', 4).wait()).toMatch(/files of jobs may not go there/);
    expect(existsSync(path.join(outDir, 'huge.bin'))).toBe(false);
    expect(readdirSync(outDir).filter((name) => name.includes('dispy-part'))).toEqual([]);
    // The scheduler kept nothing of them.
    const jobFiles = path.join(scheduler.destPath, 'job-files');
    expect(existsSync(jobFiles) ? readdirSync(jobFiles, { recursive: true }) : []).toEqual([]);
  });

  it('copies a file to a node with sendFile, refuses one over the scheduler limit, and answers -1 for a node not serving the cluster', async () => {
    const { nodes, scheduler } = await twoNodesAndScheduler(['--max-file-size', '1024']);
    const files = tempDir();
    writeFileSync(path.join(files, 'words.txt'), 'alpha beta');
    writeFileSync(path.join(files, 'big.txt'), 'x'.repeat(2048));
    const cluster = shared(scheduler, (name: string) => require('node:fs').readFileSync(name, 'utf8') as string, {
      nodes: [nodes[0]!.host],
    });
    await cluster.submit(__filename).wait(); // set up on its node
    await until(() => cluster.status().nodes.length === 1);
    expect(await cluster.sendFile(path.join(files, 'words.txt'), nodes[0]!.host)).toBe(0);
    expect(await cluster.submitNode(nodes[0]!.host, 'words.txt').wait()).toBe('alpha beta');
    await expect(cluster.sendFile(path.join(files, 'big.txt'), nodes[0]!.host)).rejects.toThrow(/exceeds the size limit of 1024 bytes/);
    expect(await cluster.sendFile(path.join(files, 'words.txt'), nodes[1]!.host)).toBe(-1);
    expect(await cluster.sendFile(path.join(files, 'words.txt'), '127.0.124.99')).toBe(-1);
  });

  it('allocates a node later, deallocates one, and closes one, as a JobCluster does', async () => {
    const { nodes, scheduler } = await twoNodesAndScheduler();
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const cluster = shared(scheduler, (n: number) => n * 2, { nodes: [a.host] });
    expect(await cluster.submit(1).wait()).toBe(2);
    expect(cluster.status().nodes.map((node) => node.ipAddr)).toEqual([a.host]);
    expect(await cluster.allocateNode(b.host)).toBe(0);
    await until(() => cluster.status().nodes.length === 2);
    // a takes no more jobs: they go to b.
    expect(await cluster.deallocateNode(a.host)).toBe(0);
    const onB = await Promise.all(
      Array.from({ length: 4 }, (_, n) => cluster.submit(n)).map(async (job) => (await job.wait(), job.ipAddr)),
    );
    expect(onB).toEqual([b.host, b.host, b.host, b.host]);
    expect(await cluster.closeNode(b.host, { terminatePending: true })).toBe(0);
    await until(() => !cluster.status().nodes.some((node) => node.ipAddr === b.host && node.busy > 0) && cluster.status().nodes.length < 2);
    await b.waitForLog(/released this node/);
    expect(await cluster.closeNode('127.0.124.99')).toBe(-1);
    expect(await cluster.deallocateNode('127.0.124.99')).toBe(-1);
  });

  it('gives each node its NodeAllocate depends and setup arguments', async () => {
    const { nodes, scheduler } = await twoNodesAndScheduler();
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const files = tempDir();
    writeFileSync(path.join(files, 'of-a.txt'), 'file of a');
    writeFileSync(path.join(files, 'of-b.txt'), 'file of b');
    function setup(tag: string) {
      (globalThis as { nodeTag?: string }).nodeTag = tag;
      return 0;
    }
    const cluster = shared(
      scheduler,
      (name: string) => `${(globalThis as { nodeTag?: string }).nodeTag}:${require('node:fs').readFileSync(name, 'utf8') as string}`,
      {
        setup,
        nodes: [
          new NodeAllocate(a.host, { depends: [path.join(files, 'of-a.txt')], setupArgs: ['A'] }),
          new NodeAllocate(b.host, { depends: [path.join(files, 'of-b.txt')], setupArgs: ['B'] }),
        ],
      },
    );
    await cluster.submit('of-a.txt').wait();
    await until(() => cluster.status().nodes.length === 2);
    expect(await cluster.submitNode(a.host, 'of-a.txt').wait()).toBe('A:file of a');
    expect(await cluster.submitNode(b.host, 'of-b.txt').wait()).toBe('B:file of b');
    const missing = cluster.submitNode(a.host, 'of-b.txt');
    await missing.wait();
    expect(missing.status).toBe(DispyJob.Terminated);
  });

  it('changes nothing with setNodeCpus on shared nodes, unless the scheduler is --cooperative', async () => {
    for (const cooperative of [false, true]) {
      const { nodes, scheduler } = await twoNodesAndScheduler(cooperative ? ['--cooperative'] : []);
      const cluster = shared(scheduler, (n: number) => n, { nodes: [nodes[0]!.host] });
      await cluster.submit(1).wait();
      await until(() => cluster.status().nodes.length === 1);
      expect(await cluster.setNodeCpus(nodes[0]!.host, 1)).toBe(cooperative ? 1 : 2);
      expect(cluster.status().nodes[0]!.cpus).toBe(cooperative ? 1 : 2);
      await cluster.close();
      await stopAllSchedulers();
      await stopAllNodes();
    }
  }, 60_000);
});

declare global {
  function dispySendFile(path: string): Promise<number>;
}
