/*
 * The link between a SharedJobCluster and dispyscheduler, with real processes over loopback
 * (127.0.124.*): cut mid-run through a TCP relay of the test's own (the client reconnects and
 * takes its computation back: every result once), and the scheduler killed and restarted while
 * a client is idle (it reconnects, or fails clearly; no hang).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DispyJob, SharedJobCluster } from '@dispy/client';
import { freePort, startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';
import { startScheduler, stopAllSchedulers, type SchedulerProcess } from '../../../testing/dispyscheduler-process.mjs';
import { startRelay, type TcpRelay } from '../../../testing/tcp-relay.js';

const NODE_SECRET = 'node secret of the client link tests';
const CLUSTER_SECRET = 'cluster secret of the client link tests';

const clusters: SharedJobCluster[] = [];
const relays: TcpRelay[] = [];

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 1 })));
  await Promise.all(relays.splice(0).map((relay) => relay.close()));
  await stopAllSchedulers();
  await stopAllNodes();
});

/** A node of 2 CPUs and a dispyscheduler that manages it. */
async function nodeAndScheduler(args: string[] = []): Promise<{ scheduler: SchedulerProcess; nodePort: number }> {
  const nodePort = await freePort('127.0.124.2');
  await startNode({ host: '127.0.124.2', port: nodePort, cpus: 2, secret: NODE_SECRET, args: ['--ping-interval', '1'] });
  const scheduler = await startScheduler({
    host: '127.0.124.1',
    nodes: ['127.0.124.2'],
    nodePort,
    nodeSecret: NODE_SECRET,
    clusterSecret: CLUSTER_SECRET,
    args: ['--ping-interval', '1', '--debug', ...args],
  });
  return { scheduler, nodePort };
}

/** A job: waits `ms`, returns three times `n`. */
const compute = async (n: number, ms: number): Promise<number> => {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return n * 3;
};

describe('SharedJobCluster ↔ dispyscheduler link', () => {
  it('cut several times mid-run: the client reconnects and takes its computation back; every job ends Finished once with its own result', async () => {
    const { scheduler } = await nodeAndScheduler();
    const relay = await startRelay('127.0.124.9', scheduler.host, scheduler.port);
    relays.push(relay);
    const statuses = new Map<number, number[]>();
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const cluster = new SharedJobCluster(compute, {
      schedulerNode: '127.0.124.9',
      schedulerPort: scheduler.port,
      secret: CLUSTER_SECRET,
      loglevel: 'silent',
      recoverFile: false,
      clusterStatus: (status) => {
        if (status === DispyJob.Running) started();
      },
      callback: (job) => {
        if (job.status === DispyJob.Finished || job.status === DispyJob.Cancelled || job.status === DispyJob.Terminated) {
          const id = job.id as number;
          statuses.set(id, [...(statuses.get(id) ?? []), job.status]);
        }
      },
    });
    clusters.push(cluster);
    const count = 60;
    const jobs = Array.from({ length: count }, (_, n) => {
      const job = cluster.submit(n, 100 + (n % 7) * 30);
      job.id = n;
      return job;
    });
    // Cut the link three times while jobs run, each once the previous cut was taken back.
    // Jobs run: the computation is set up (a cut before its SetupReply is a set-up again: see shared-link.test.ts).
    await running;
    for (let cut = 1; cut <= 3; cut++) {
      if (cut > 1) await scheduler.waitForLog(new RegExp(`(took computation compute \\(\\w+\\) back \\(live\\)[\\s\\S]*){${cut - 1}}`));
      expect(relay.cutNow()).toBe(1);
      await scheduler.waitForLog(new RegExp(`(keeping its 1 computation for 60 s[\\s\\S]*){${cut}}`));
    }
    const results = await Promise.all(jobs.map((job) => job.wait()));
    // Any job that did not finish, with why (named first: the results alone say only `undefined`).
    const unfinished = jobs
      .filter((job) => job.status !== DispyJob.Finished)
      .map((job) => `${String(job.id)}: ${job.status} ${job.exception}`);
    expect(unfinished).toEqual([]);
    expect(results).toEqual(Array.from({ length: count }, (_, n) => n * 3));
    expect(jobs.every((job) => job.status === DispyJob.Finished)).toBe(true);
    // Each job's callback came once, Finished: no reply lost, none delivered twice.
    expect([...statuses.values()].every((seen) => seen.length === 1 && seen[0] === DispyJob.Finished)).toBe(true);
    expect(statuses.size).toBe(count);
    // The scheduler never closed the computation for the lost client.
    expect(scheduler.log).not.toMatch(/was not back within/);
    await cluster.close();
  }, 90_000);

  it('the scheduler killed and restarted while a client is idle: the client reconnects, learns its computation is gone, and the next job sets it up again', async () => {
    const { scheduler, nodePort } = await nodeAndScheduler();
    const cluster = new SharedJobCluster(compute, {
      schedulerNode: scheduler.host,
      schedulerPort: scheduler.port,
      secret: CLUSTER_SECRET,
      loglevel: 'silent',
      recoverFile: false,
    });
    clusters.push(cluster);
    expect(await cluster.submit(1, 0).wait()).toBe(3);
    // SIGKILL: no goodbye; the client sees the connection drop and reconnects while the scheduler is away.
    await scheduler.stop('SIGKILL');
    const waiting = cluster.submit(2, 0);
    const again = await startScheduler({
      host: scheduler.host,
      port: scheduler.port,
      nodes: ['127.0.124.2'],
      nodePort,
      nodeSecret: NODE_SECRET,
      clusterSecret: CLUSTER_SECRET,
      args: ['--ping-interval', '1', '--debug'],
    });
    // The restarted scheduler knows nothing of the computation. A job submitted after the client saw
    // the loss waited and runs on the computation set up again; one sent on the dead connection
    // (before the client saw it drop) ends Cancelled, saying why: no hang either way.
    const value = await waiting.wait();
    if (waiting.status === DispyJob.Finished) expect(value).toBe(6);
    else {
      expect(waiting.status).toBe(DispyJob.Cancelled);
      expect(waiting.exception).toMatch(/dispyscheduler 127\.0\.124\.1:\d+ lost the computation while the link was down: no computation/);
    }
    expect(await cluster.submit(3, 0).wait()).toBe(9);
    await again.waitForLog(/computation compute \(\w+\) added/);
    await cluster.close();
  }, 60_000);
});
