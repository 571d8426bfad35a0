import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DispyJob, JobCluster, NodeAllocate, recoverJobs } from '../src/index.js';
import { freePort, startNode, stopAllNodes, type NodeProcess } from '../../../testing/dispynode-process.mjs';

// "A killed client" and "A restarted node" of issue 10. Nodes of this file listen on 127.0.111.*
// (a killed client) and 127.0.112.* (a restarted node).
const DOOMED_CLIENT = fileURLToPath(new URL('./fixtures/doomed-client.mjs', import.meta.url));
const SECRET = 'recover these jobs, please';
let dir: string;
let client: ChildProcess | undefined;
const clusters: JobCluster[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dispy-killed-client-'));
});

afterEach(async () => {
  client?.kill('SIGKILL');
  client = undefined;
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 5 })));
  await stopAllNodes();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Starts the doomed client on `nodes` with jobs of these durations; resolves once all run, then SIGKILLs it. */
async function runAndKill(nodes: NodeProcess[], durations: number[]): Promise<string> {
  const file = path.join(dir, 'recover');
  const child = spawn(
    process.execPath,
    [DOOMED_CLIENT, file, JSON.stringify(nodes.map(({ host, port }) => ({ host, port }))), JSON.stringify(durations)],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DISPY_SECRET: SECRET } },
  );
  client = child;
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`the client exited (${code}) before its jobs ran:\n${output}`)));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  return file;
}

// Every job must be on a node when the client dies (jobs still queued in the client die with it),
// so each node runs 10 at once: the jobs sleep, so a node may offer more CPUs than this machine
// has; dispynode refuses that, so it is told the machine has 16.
const SIXTEEN_CPUS = `data:text/javascript,${encodeURIComponent("import os from 'node:os'; os.availableParallelism = () => 16;")}`;

async function twoNodes(): Promise<NodeProcess[]> {
  return Promise.all(
    ['127.0.111.1', '127.0.111.2'].map((host) => startNode({ host, cpus: 10, secret: SECRET, execArgv: ['--import', SIXTEEN_CPUS] })),
  );
}

/** A new cluster gets work done on both nodes at once (they are free of the dead client). */
async function nodesServeANewCluster(nodes: NodeProcess[]): Promise<void> {
  const cluster = new JobCluster((n: number) => n + 1, {
    nodes: nodes.map(({ host, port }) => new NodeAllocate(host, { port })),
    ipAddr: '127.0.0.1',
    port: 0,
    secret: SECRET,
    recoverFile: false,
    loglevel: 'silent',
  });
  clusters.push(cluster as JobCluster);
  // Each node gets its share by name: load balancing alone may give every tiny job to the first node up.
  const jobs = Array.from({ length: 40 }, (_, i) => cluster.submitNode(nodes[i % nodes.length]!.host, i));
  expect(await Promise.all(jobs.map((job) => job.wait()))).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  expect(jobs.map((job) => job.ipAddr)).toEqual(jobs.map((_, i) => nodes[i % nodes.length]!.host));
  await cluster.close();
}

describe('a killed client', () => {
  it('loses nothing: recoverJobs in another process gets all 20 results of 2 s jobs on two nodes', async () => {
    const nodes = await twoNodes();
    const file = await runAndKill(
      nodes,
      Array.from({ length: 20 }, () => 2000),
    );
    const jobs = await recoverJobs(file, { secret: SECRET });
    expect(jobs.map((job) => [job.id, DispyJob.statusName(job.status), job.result])).toEqual(
      Array.from({ length: 20 }, (_, i) => [`job ${i}`, 'Finished', i * i]),
    );
    expect(new Set(jobs.map((job) => job.ipAddr))).toEqual(new Set(nodes.map((node) => node.host)));
    expect(fs.existsSync(file)).toBe(false);
    await nodesServeANewCluster(nodes);
  });

  it('with terminatePending and a short timeout, returns the finished jobs and terminates the rest', async () => {
    const nodes = await twoNodes();
    // Half end within recovery's timeout (after the client died), half would run for 10 minutes.
    const durations = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? 1500 : 600_000));
    const file = await runAndKill(nodes, durations);
    const jobs = await recoverJobs(file, { secret: SECRET, timeout: 4, terminatePending: true });
    expect(jobs.map((job) => [job.id, DispyJob.statusName(job.status), job.result])).toEqual(
      durations.map((ms, i) => [`job ${i}`, ms === 1500 ? 'Finished' : 'Terminated', ms === 1500 ? i * i : undefined]),
    );
    expect(jobs.filter((job) => job.status === DispyJob.Terminated).every((job) => /terminatePending/.test(job.exception ?? ''))).toBe(
      true,
    );
    expect(fs.existsSync(file)).toBe(false);
    await nodesServeANewCluster(nodes);
  });
});

/** Resolves when `condition` holds (checked every 50 ms); rejects with `what` after `timeoutMs`. */
async function until(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !condition();) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The folders of saved replies under a node's prefix (one per computation), each with its replies' files. */
function savedReplies(prefix: string): Map<string, string[]> {
  const root = path.join(prefix, 'saved-replies');
  const folders = fs.existsSync(root) ? fs.readdirSync(root) : [];
  return new Map(folders.map((folder) => [folder, fs.readdirSync(path.join(root, folder)).filter((name) => name.endsWith('.reply'))]));
}

/** Kills a node with `signal` and waits (at most 10 s) until it has exited. */
async function killNode(node: NodeProcess, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  const { child } = node;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the node did not exit within 10 s of ${signal}:\n${node.log}`)), 10_000);
  });
  try {
    await Promise.race([exited, late]);
  } finally {
    clearTimeout(timer);
  }
  if (signal === 'SIGTERM') expect(child.exitCode, node.log).toBe(0);
  await node.stop(); // it exited: this only forgets it (its prefix is the test's)
}

describe('a restarted node', () => {
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`keeps the replies it saved for a killed client across a restart after ${signal}: recoverJobs gets every one`, async () => {
      const host = '127.0.112.1';
      const port = await freePort(host);
      // The node's directory outlives it (removed with `dir`), so the node started again finds its replies.
      const prefix = path.join(dir, 'node');
      const start = () => startNode({ host, port, cpus: 4, secret: SECRET, destPathPrefix: prefix, execArgv: ['--import', SIXTEEN_CPUS] });
      const node = await start();
      const durations = [800, 1100, 1400, 1700];
      const file = await runAndKill([node], durations);
      // The client is gone: the node finishes the jobs and saves each reply to disk.
      await until(
        () => [...savedReplies(prefix).values()].flat().length === durations.length,
        `${durations.length} replies saved under ${prefix}`,
      );
      const saved = savedReplies(prefix);
      expect(saved.size).toBe(1);
      const [folder] = saved.keys();
      await killNode(node, signal);

      const restarted = await start();
      expect(restarted.log).toMatch(/saved replies found/);
      const jobs = await recoverJobs(file, { secret: SECRET, timeout: 20 });
      expect(jobs.map((job) => [job.id, DispyJob.statusName(job.status), job.result, job.exception ?? ''])).toEqual(
        durations.map((_, i) => [`job ${i}`, 'Finished', i * i, '']),
      );
      // Collected and released: nothing of the computation is left on the node, nor of the recover file.
      expect(fs.existsSync(path.join(prefix, 'saved-replies', folder!))).toBe(false);
      expect(fs.existsSync(file)).toBe(false);
      await nodesServeANewCluster([restarted]);
    }, 60_000);
  }
});
