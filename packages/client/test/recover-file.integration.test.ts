import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DispyError, ErrorCode, JobCluster, readRecoverFile } from '../src/index.js';
import { startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';
import { clusterMaker } from './cluster-on.js';

// Nodes of this file listen on 127.0.112.*.
let dir: string;
const clusters: JobCluster[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dispy-recover-file-'));
});

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 5 })));
  await stopAllNodes();
  fs.rmSync(dir, { recursive: true, force: true });
});

const clusterOn = clusterMaker(clusters);

async function sleeper(ms: number) {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return ms;
}

const recoverFiles = (where: string) => fs.readdirSync(where).filter((name) => name.startsWith('_dispy_'));

describe('the recover file of a cluster', () => {
  it('records the nodes and each job as it goes and ends, and is deleted by a close that delivered every result', async () => {
    const node = await startNode({ host: '127.0.112.1', cpus: 2 });
    const file = path.join(dir, 'recover.dat');
    const cluster = clusterOn(sleeper, node, { recoverFile: file });
    const jobs = [1, 2, 3].map((ms) => cluster.submit(ms));
    jobs[0]!.id = 'first';
    expect(await Promise.all(jobs.map((job) => job.wait()))).toEqual([1, 2, 3]);
    await vi.waitFor(
      async () => {
        const contents = await readRecoverFile(file);
        expect([...contents.jobs.values()].map((job) => job.state)).toEqual(['finished', 'finished', 'finished']);
        expect([...contents.nodes.values()]).toEqual([
          { type: 'node', node: 0, host: node.host, port: node.port, name: expect.any(String) },
        ]);
        expect(contents.jobs.get(1)).toMatchObject({ node: 0, id: 'first' });
      },
      { timeout: 5000 },
    );
    await cluster.close();
    expect(fs.existsSync(file)).toBe(false);
  });

  it('is named _dispy_YYYYMMDDHHMMSS in the working directory by default, and none is written with false', async () => {
    const node = await startNode({ host: '127.0.112.2', cpus: 1 });
    const before = new Set(recoverFiles(process.cwd()));
    const cluster = clusterOn(sleeper, node);
    const created = recoverFiles(process.cwd()).filter((name) => !before.has(name));
    expect(created).toHaveLength(1);
    expect(created[0]).toMatch(/^_dispy_\d{14}(_\d+)?$/);
    expect(await cluster.submit(1).wait()).toBe(1);
    await cluster.close();
    expect(fs.existsSync(created[0]!)).toBe(false);

    const none = clusterOn(sleeper, node, { recoverFile: false });
    expect(recoverFiles(process.cwd()).filter((name) => !before.has(name))).toEqual([]);
    expect(await none.submit(1).wait()).toBe(1);
    await none.close();
  });

  it('is kept by a close that gave up on jobs still running, with those jobs in it', async () => {
    const node = await startNode({ host: '127.0.112.3', cpus: 2 });
    const file = path.join(dir, 'kept');
    const cluster = clusterOn(sleeper, node, { recoverFile: file });
    const done = cluster.submit(1);
    const long = cluster.submit(60_000);
    await done.wait();
    await vi.waitFor(() => expect(long.status).toBe(6 /* Running */), { timeout: 10_000 });
    await cluster.close({ timeout: 0.1 });
    const contents = await readRecoverFile(file);
    expect(Object.fromEntries([...contents.jobs].map(([job, entry]) => [job, entry.state]))).toEqual({ 1: 'finished', 2: 'running' });
  });

  it('refuses to overwrite a recover file it is given', () => {
    const file = path.join(dir, 'taken');
    fs.writeFileSync(file, 'jobs of a client that died');
    const error = (() => {
      try {
        new JobCluster(sleeper, { nodes: ['127.0.112.9'], recoverFile: file, loglevel: 'silent' });
      } catch (e) {
        return e;
      }
    })();
    expect(DispyError.isInstance(error) && error.code).toBe(ErrorCode.RECOVER_FILE);
    expect((error as Error).message).toMatch(/taken exists: it may hold the jobs of a client that died; recover them with recoverJobs/);
    expect(fs.readFileSync(file, 'utf8')).toBe('jobs of a client that died');
  });
});
