/*
 * dispyscheduler --httpd with real processes over loopback (127.0.124.*): the monitor page's
 * state shows each client's computation live, cancels a job of it, and forgets it when it closes.
 */
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DispyJob, SharedJobCluster } from '@dispy/client';
import { DispyHTTPServer } from '@dispy/monitor';
import { freePort, startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';
import { startScheduler, stopAllSchedulers } from '../../../testing/dispyscheduler-process.mjs';

const NODE_SECRET = 'node secret of the httpd tests';
const CLUSTER_SECRET = 'cluster secret of the httpd tests';
const TOKEN = 'httpd-token-of-the-tests';

interface State {
  clusters: Array<{
    id: string;
    snapshot: { name: string; jobs: Record<string, number>; nodes: Array<{ key: string; busy: number; jobsDone: number }> };
  }>;
}

const clusters: SharedJobCluster[] = [];

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 1 })));
  await stopAllSchedulers();
  await stopAllNodes();
});

/** Runs on the node: waits `ms`, then returns it. */
async function nap(ms: number) {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return ms;
}

describe('dispyscheduler --httpd', () => {
  it('shows every computation live, cancels a job from the page, and drops a computation that closed', async () => {
    const nodePort = await freePort('127.0.124.2');
    const node = await startNode({ host: '127.0.124.2', port: nodePort, cpus: 2, secret: NODE_SECRET });
    const httpdPort = await freePort('127.0.124.1');
    const scheduler = await startScheduler({
      host: '127.0.124.1',
      nodes: [node.host],
      nodePort,
      nodeSecret: NODE_SECRET,
      clusterSecret: CLUSTER_SECRET,
      args: ['--httpd', '--httpd-host', '127.0.124.1', '--httpd-port', String(httpdPort), '--httpd-token', TOKEN],
    });
    await scheduler.waitForLog(/monitor page at http:\/\/127\.0\.124\.1:\d+\/ \(open it with \?token=\)/);
    const base = `http://127.0.124.1:${httpdPort}`;
    const cookie = { cookie: `dispy-monitor-${httpdPort}=${TOKEN}` };
    const state = async () => (await (await fetch(`${base}/api/state`, { headers: cookie })).json()) as State;

    expect((await fetch(`${base}/api/state`)).status).toBe(403);
    expect((await state()).clusters).toEqual([]);

    const cluster = new SharedJobCluster(nap, {
      schedulerNode: scheduler.host,
      schedulerPort: scheduler.port,
      secret: CLUSTER_SECRET,
      loglevel: 'silent',
      recoverFile: false,
    });
    clusters.push(cluster);
    expect(await cluster.submit(10).wait()).toBe(10);
    const long = cluster.submit(60_000);
    const shown = await vi.waitFor(
      async () => {
        const [computation] = (await state()).clusters;
        expect(computation?.snapshot).toMatchObject({ name: 'nap', jobs: { submitted: 2, finished: 1, running: 1 } });
        expect(computation?.snapshot.nodes).toMatchObject([{ key: `${node.host}:${nodePort}`, busy: 1, jobsDone: 1 }]);
        return computation!;
      },
      { timeout: 20_000, interval: 200 },
    );
    const key = `${node.host}:${nodePort}`;
    const { jobs } = (await (await fetch(`${base}/api/jobs?cluster=${shown.id}&node=${key}`, { headers: cookie })).json()) as {
      jobs: Array<{ key: string; id: string }>;
    };
    expect(jobs).toHaveLength(1);
    const cancel = (job: string, origin = base) =>
      fetch(`${base}/api/action`, {
        method: 'POST',
        headers: { ...cookie, origin, 'content-type': 'application/json' },
        body: JSON.stringify({ action: 'cancelJob', cluster: shown.id, job }),
      });
    expect((await cancel(jobs[0]!.key, 'http://elsewhere.example')).status).toBe(403);
    expect((await cancel(jobs[0]!.key)).status).toBe(200);
    await long.wait();
    expect(DispyJob.statusName(long.status)).toBe('Cancelled');
    await vi.waitFor(async () => expect((await state()).clusters[0]?.snapshot.jobs).toMatchObject({ cancelled: 1, running: 0 }), {
      timeout: 20_000,
      interval: 200,
    });

    await cluster.close();
    await vi.waitFor(async () => expect((await state()).clusters).toEqual([]), { timeout: 20_000, interval: 200 });
  });

  it('refuses --httpd on another address without a token, and exits clearly when its port is taken', async () => {
    const base = { host: '127.0.124.1', nodes: ['127.0.124.2'], nodePort: 1, nodeSecret: NODE_SECRET, clusterSecret: CLUSTER_SECRET };
    await expect(startScheduler({ ...base, args: ['--httpd', '--httpd-host', '0.0.0.0'] })).rejects.toThrow(
      /--httpd-host 0\.0\.0\.0 is reachable from other machines.*give --httpd-token/,
    );
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      // It starts, then cannot serve the page: it stops and exits 1, saying why.
      const scheduler = await startScheduler({ ...base, args: ['--httpd', '--httpd-port', String(port)] });
      await scheduler.exited;
      expect(scheduler.child.exitCode).toBe(1);
      expect(scheduler.log).toMatch(`could not listen on 127.0.0.1:${port}: the port is in use`);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('makes a token for the run when given none, logs the address with it, and refuses requests without it', async () => {
    const httpdPort = await freePort('127.0.124.1');
    const scheduler = await startScheduler({
      host: '127.0.124.1',
      nodes: ['127.0.124.2'],
      nodePort: 1,
      nodeSecret: NODE_SECRET,
      clusterSecret: CLUSTER_SECRET,
      args: ['--httpd', '--httpd-port', String(httpdPort)],
    });
    await scheduler.waitForLog(/monitor page at http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{32} \(a token made for this run/);
    const address = /monitor page at (\S+)/.exec(scheduler.log)![1]!;
    expect((await fetch(`http://127.0.0.1:${httpdPort}/api/state`)).status).toBe(403);
    const opened = await fetch(address, { redirect: 'manual' });
    expect(opened.status).toBe(303);
    expect(opened.headers.get('set-cookie')).toMatch(new RegExp(`^dispy-monitor-${httpdPort}=`));
  });

  it("shows a SharedJobCluster in its own program's monitor: its nodes and running jobs, through the scheduler", async () => {
    const nodePort = await freePort('127.0.124.2');
    const node = await startNode({ host: '127.0.124.2', port: nodePort, cpus: 2, secret: NODE_SECRET });
    const scheduler = await startScheduler({
      host: '127.0.124.1',
      nodes: [node.host],
      nodePort,
      nodeSecret: NODE_SECRET,
      clusterSecret: CLUSTER_SECRET,
    });
    const cluster = new SharedJobCluster(nap, {
      schedulerNode: scheduler.host,
      schedulerPort: scheduler.port,
      secret: CLUSTER_SECRET,
      loglevel: 'silent',
      recoverFile: false,
    });
    clusters.push(cluster);
    const monitor = new DispyHTTPServer(cluster, { port: 0, loglevel: 'silent' });
    try {
      const { port } = await monitor.start();
      const base = `http://127.0.0.1:${port}`;
      const long = cluster.submit(60_000);
      const key = `${node.host}:${nodePort}`;
      await vi.waitFor(
        async () => {
          const { clusters: shown } = (await (await fetch(`${base}/api/state`)).json()) as State;
          expect(shown[0]?.snapshot).toMatchObject({ name: 'nap', jobs: { submitted: 1, running: 1 }, nodes: [{ key, busy: 1 }] });
          const { jobs } = (await (await fetch(`${base}/api/jobs?cluster=c1&node=${key}`)).json()) as { jobs: unknown[] };
          expect(jobs).toHaveLength(1);
        },
        { timeout: 20_000, interval: 200 },
      );
      expect(await cluster.cancel(long)).toBe(0);
      await long.wait();
    } finally {
      await monitor.shutdown();
    }
  });
});
