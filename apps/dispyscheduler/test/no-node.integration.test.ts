/*
 * dispyscheduler with jobs waiting and no node: it says so once, naming what it pinged, as a
 * JobCluster does. Real processes on 127.0.125.*.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SharedJobCluster } from '@dispy/client';
import { freePort } from '../../../testing/dispynode-process.mjs';
import { startScheduler, stopAllSchedulers } from '../../../testing/dispyscheduler-process.mjs';

const clusters: SharedJobCluster[] = [];

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 0 })));
  await stopAllSchedulers();
});

describe('dispyscheduler without nodes', () => {
  it('warns "no node found" once, naming what it pinged, when jobs wait 5 s', async () => {
    // No node listens on 127.0.125.250.
    const scheduler = await startScheduler({
      host: '127.0.125.1',
      nodes: ['127.0.125.250'],
      nodePort: await freePort('127.0.0.1'),
      args: ['--ping-interval', '1'],
    });
    const cluster = new SharedJobCluster((n: number) => n, {
      schedulerNode: scheduler.host,
      schedulerPort: scheduler.port,
      loglevel: 'silent',
      recoverFile: false,
    });
    clusters.push(cluster);
    cluster.submit(1);
    await scheduler.waitForLog(
      /warn: no node found in 5 s while jobs wait: no node answered\. In \d+ rounds?, discovery pinged 127\.0\.125\.250/,
    );
    expect(scheduler.log.match(/no node found/g)).toHaveLength(1);
  }, 30_000);
});
