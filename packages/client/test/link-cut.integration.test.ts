import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DispyJob, JobCluster } from '../src/index.js';
import { freePort, startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';
import { startRelay, type TcpRelay } from '../../../testing/tcp-relay.js';
import { captureClientLog } from './capture-client-log.js';

// Loopback addresses of this file: 127.0.20.*.
const clusters: JobCluster[] = [];
const relays: TcpRelay[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 5 })));
  await Promise.all(relays.splice(0).map((relay) => relay.close()));
  await stopAllNodes();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  vi.restoreAllMocks();
});

describe('JobCluster when its link to a node is cut', () => {
  it('reconnects through cuts while 200 jobs run: every job ends Finished once, with its result, and none runs twice', async () => {
    const nodeHost = '127.0.20.2';
    const relayHost = '127.0.20.3';
    const port = await freePort(nodeHost);
    await startNode({ host: nodeHost, port, cpus: 2, args: ['--ext-host', relayHost, '--heartbeat-interval', '1'] });
    const relay = await startRelay(relayHost, nodeHost, port);
    relays.push(relay);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-link-cut-'));
    dirs.push(dir);
    const runs = path.join(dir, 'runs.txt');
    const log = captureClientLog();
    const finishedCalls = new Map<number, number>();
    const cutWhenSent = new Set([45, 95, 145]);
    let cuts = 0;
    const cluster = new JobCluster(
      async (n: number, file: string) => {
        // Each run is recorded on the node's side: a job that ran twice shows twice.
        require('node:fs').appendFileSync(file, `${n}\n`);
        // Some jobs are long, so that a cut finds them running (the node holds them).
        await new Promise((resolve) => setTimeout(resolve, n % 10 === 5 ? 500 : 20 + (n % 7) * 5));
        return n * 2;
      },
      {
        nodes: [nodeHost, relayHost],
        nodePort: port,
        ipAddr: '127.0.0.1',
        port: 0,
        loglevel: 'info',
        // The link is cut the moment some jobs are handed to it: their Job frames are still on
        // their way, and must be sent again (they never started).
        clusterStatus: (status, _node, job) => {
          if (status === DispyJob.Running && cutWhenSent.delete(job!.id as number) && relay.cutNow() > 0) cuts++;
        },
        callback: (job) => {
          if (job.status === DispyJob.Finished) finishedCalls.set(job.id as number, (finishedCalls.get(job.id as number) ?? 0) + 1);
        },
      },
    );
    clusters.push(cluster as JobCluster);
    const jobs = Array.from({ length: 200 }, (_, n) => {
      const job = cluster.submit(n, runs);
      job.id = n;
      return job;
    });
    const finished = () => jobs.filter((job) => job.status === DispyJob.Finished).length;
    // And cut at other moments, while the long jobs run.
    for (const threshold of [20, 66, 120, 176]) {
      await vi.waitFor(() => expect(finished()).toBeGreaterThanOrEqual(threshold), { timeout: 60_000, interval: 20 });
      if (relay.cutNow() > 0) cuts++;
    }
    expect(await cluster.wait(120)).toBe(true);
    expect(cuts).toBeGreaterThanOrEqual(6);
    for (const [n, job] of jobs.entries()) {
      expect(job.status, `job ${n}: ${job.exception}`).toBe(DispyJob.Finished);
      expect(job.result).toBe(n * 2);
      expect(finishedCalls.get(n)).toBe(1);
    }
    const ran = readFileSync(runs, 'utf8').trim().split('\n').map(Number);
    expect(ran).toHaveLength(200);
    expect(new Set(ran).size).toBe(200);
    // Each cut is logged once as lost, each return once as back.
    expect(log().match(/lost the link to node/g)).toHaveLength(cuts);
    expect(log().match(/is back after/g)).toHaveLength(cuts);
  }, 120_000);

  it('resubmits a reentrant job whose node is killed at most maxRetries times, then ends it Terminated naming each node', async () => {
    // A short zombie interval: nodes keep computations for a lost link, so the client waits that
    // long for a killed node to come back before it is dead.
    const port = await freePort('127.0.20.5');
    const nodes = await Promise.all(
      ['127.0.20.5', '127.0.20.6'].map((host) => startNode({ host, port, cpus: 1, args: ['--zombie-interval', '0.02'] })),
    );
    const cluster = new JobCluster(
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 60_000));
        return 'never';
      },
      {
        nodes: nodes.map((node) => node.host),
        nodePort: port,
        ipAddr: '127.0.0.1',
        port: 0,
        loglevel: 'silent',
        reentrant: true,
        maxRetries: 1,
      },
    );
    clusters.push(cluster as JobCluster);
    const job = cluster.submit();
    const killed: string[] = [];
    for (let death = 0; death < 2; death++) {
      await vi.waitFor(() => expect(job.status === DispyJob.Running && !killed.includes(job.ipAddr!)).toBe(true), {
        timeout: 30_000,
        interval: 20,
      });
      killed.push(job.ipAddr!);
      nodes.find((node) => node.host === job.ipAddr)!.child.kill('SIGKILL');
    }
    await job.wait();
    expect(job.status).toBe(DispyJob.Terminated);
    expect(job.exception).toMatch(/its node died 2 times, more than maxRetries \(1\)/);
    for (const host of killed) expect(job.exception).toContain(host);
  });
});
