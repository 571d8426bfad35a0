import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DispyJob, JobCluster } from '../src/index.js';
import { startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';

const clusters: JobCluster[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 5 })));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  await stopAllNodes();
});

describe('a per-job depends file that goes away', () => {
  it('ends the job Terminated, naming the file, and the node goes on serving (it does not wait for the file)', async () => {
    const node = await startNode({ host: '127.0.11.2', cpus: 1 });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-gone-'));
    dirs.push(dir);
    const file = path.join(dir, 'input.txt');
    writeFileSync(file, 'input');
    // The first job deletes the second one's file (node and client share this machine) while the
    // second waits for the node's only CPU: the file is gone after submitJob, before it is sent.
    const cluster = new JobCluster(
      (remove: string | null) => {
        if (remove) require('node:fs').rmSync(remove);
        return 'ran';
      },
      { nodes: [node.host], nodePort: node.port, ipAddr: '127.0.0.1', port: 0, loglevel: 'silent' },
    );
    clusters.push(cluster as JobCluster);
    const remover = cluster.submitJob({ args: [file], priority: 1 });
    const gone = cluster.submitJob({ args: [null], depends: [file] });
    expect(await remover.wait()).toBe('ran');
    expect(await gone.wait()).toBeUndefined();
    expect(gone.status).toBe(DispyJob.Terminated);
    expect(gone.exception).toContain(file);
    // With one CPU, the next job runs only if the node and the scheduler freed it.
    expect(await cluster.submit(null).wait()).toBe('ran');
    expect(await cluster.wait(10)).toBe(true);
  });
});
