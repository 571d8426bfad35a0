import { afterEach, describe, expect, it, vi } from 'vitest';
import { JobCluster, NodeAllocate } from '../src/index.js';
import { startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';
import { captureClientLog } from './capture-client-log.js';

// Loopback addresses of this file's own (127.0.131.*): nothing leaves this machine.
const clusters: JobCluster[] = [];

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 5 })));
  await stopAllNodes();
  vi.restoreAllMocks();
});

describe('no silent hangs in discovery', () => {
  it('warns once when jobs wait and no node is found, naming what was pinged, from where, and the fixes; logs each round and reply at debug', async () => {
    // The only node listens on a loopback address: broadcast from the client cannot reach it.
    const node = await startNode({ host: '127.0.131.1', cpus: 1 });
    const log = captureClientLog();
    const cluster = new JobCluster((n: number) => n + 1, { ipAddr: '127.0.131.2', port: 0, nodePort: node.port, loglevel: 'debug' });
    clusters.push(cluster);
    const job = cluster.submit(41);
    await vi.waitFor(() => expect(log()).toContain('no node found'), { timeout: 15_000, interval: 100 });
    const warnings = log()
      .split('\n')
      .filter((line) => line.includes('no node found'));
    expect(warnings).toHaveLength(1);
    const warning = warnings[0]!;
    expect(warning).toMatch(
      /warn: no node found in 5 s while jobs wait: no node answered\. In \d+ rounds?, discovery pinged nothing \(no address to ping, and no network to broadcast on\)/,
    );
    expect(warning).toMatch(/from 127\.0\.131\.2:\d+\./);
    expect(warning).toContain("nodes: ['127.0.0.1']");
    expect(warning).toContain('dispynode -i ADDR');
    expect(warning).toMatch(/--scheduler-host 127\.0\.131\.2:\d+ so that it announces itself/);
    // At debug, each round says what it pinged.
    expect(log()).toMatch(/debug: discovery round 1: pinged nothing; next round in 0\.5 s/);
    expect(log()).toContain('no network to broadcast on from 127.0.131.2');

    // The fix: name the node. Its reply is logged at debug, and the job runs.
    await cluster.allocateNode(new NodeAllocate(node.host, { port: node.port }));
    await expect(job.wait()).resolves.toBe(42);
    expect(log()).toMatch(new RegExp(`discovery round \\d+: pinged 127\\.0\\.131\\.1:${node.port}`));
    expect(log()).toMatch(
      new RegExp(
        `debug: discovery: reply from 127\\.0\\.131\\.1:${node.port}: node \\S+ at 127\\.0\\.131\\.1:${node.port}, 1 of 1 CPUs free`,
      ),
    );
    expect(
      log()
        .split('\n')
        .filter((line) => line.includes('no node found')),
    ).toHaveLength(1);
  });
});
