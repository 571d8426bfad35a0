import { afterEach, describe, expect, it, vi } from 'vitest';
import { JobCluster } from '../src/index.js';
import { startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';

const clusters: JobCluster[] = [];

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 5 })));
  await stopAllNodes();
});

describe('requests to one node at once', () => {
  it('gives two concurrent setNodeCpus calls their own answers (matched by request id)', async () => {
    const node = await startNode({ host: '127.0.11.3', cpus: 2 });
    const cluster = new JobCluster((x: number) => x, {
      nodes: [node.host],
      nodePort: node.port,
      ipAddr: '127.0.0.1',
      port: 0,
      loglevel: 'silent',
    });
    clusters.push(cluster as JobCluster);
    await vi.waitFor(() => expect(cluster.status().nodes).toHaveLength(1), { timeout: 10_000 });
    // Before request ids, the second call took the first one's answer and the first waited 60 s
    // (past this test's timeout).
    expect(await Promise.all([cluster.setNodeCpus(node.host, 1), cluster.setNodeCpus(node.host, 2)])).toEqual([1, 2]);
    expect(await cluster.submit(7).wait()).toBe(7);
  });
});
