import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { JobCluster } from '../src/index.js';
import { startNode, stopAllNodes, type NodeProcess } from '../../../testing/dispynode-process.mjs';

// Files sent back by jobs (dispySendFile) against the client's directory, with real nodes.

const clusters: JobCluster[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close()));
  await stopAllNodes();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** A computation that writes `bytes` bytes to `name` (mode `mode`) in its directory and sends it back: 0, or why it was refused. */
function sender(node: NodeProcess, extra: Record<string, unknown>) {
  const cluster = new JobCluster(
    async (name: string, bytes: number, mode: number) => {
      const fs = require('node:fs');
      const pathModule = require('node:path');
      fs.mkdirSync(pathModule.dirname(name), { recursive: true });
      fs.writeFileSync(name, Buffer.alloc(bytes, 0x41));
      fs.chmodSync(name, mode);
      try {
        return await dispySendFile(name);
      } catch (error) {
        return (error as Error).message;
      }
    },
    { nodes: [node.host], nodePort: node.port, ipAddr: '127.0.0.1', port: 0, loglevel: 'silent', ...extra },
  );
  clusters.push(cluster as JobCluster);
  return cluster;
}

describe('files sent back by jobs', () => {
  it('land under fileDir only: no symbolic link followed, sizes limited, modes masked, nothing outside', async () => {
    const node = await startNode({ host: '127.0.91.2', cpus: 1 });
    const dir = tempDir('dispy-job-files-');
    const away = tempDir('dispy-job-files-away-');
    symlinkSync(away, path.join(dir, 'link'));
    writeFileSync(path.join(dir, 'mine.txt'), 'mine');
    const cluster = sender(node, { fileDir: dir, maxFileSize: 1000, maxJobFilesSize: 1500 });
    expect(await cluster.submit('out/a.bin', 10, 0o6777).wait()).toBe(0);
    expect(statSync(path.join(dir, 'out/a.bin')).mode & 0o7777).toBe(0o755);
    expect(readFileSync(path.join(dir, 'out/a.bin'))).toEqual(Buffer.alloc(10, 0x41));
    expect(await cluster.submit('link/evil.txt', 4, 0o644).wait()).toMatch(/symbolic link; refused/);
    expect(await cluster.submit('mine.txt', 4, 0o644).wait()).toMatch(/exists already and was not sent by this cluster/);
    expect(await cluster.submit('node_modules/evil/index.js', 4, 0o644).wait()).toMatch(/files of jobs may not go there/);
    expect(await cluster.submit('big.bin', 1001, 0o644).wait()).toMatch(/exceeds the size limit of 1000 bytes/);
    expect(readdirSync(away)).toEqual([]);
    expect(readFileSync(path.join(dir, 'mine.txt'), 'utf8')).toBe('mine');
    expect(readdirSync(dir).sort()).toEqual(['link', 'mine.txt', 'out']);
    expect(readdirSync(path.join(dir, 'out'))).toEqual(['a.bin']);
  });

  it('limits the bytes of files per job', async () => {
    const node = await startNode({ host: '127.0.91.3', cpus: 1 });
    const dir = tempDir('dispy-job-files-');
    const cluster = new JobCluster(
      async (count: number) => {
        const fs = require('node:fs');
        const results: unknown[] = [];
        for (let i = 0; i < count; i++) {
          fs.writeFileSync(`part-${i}.bin`, Buffer.alloc(600));
          results.push(await dispySendFile(`part-${i}.bin`).catch((error: Error) => error.message));
        }
        return results;
      },
      { nodes: [node.host], nodePort: node.port, ipAddr: '127.0.0.1', port: 0, loglevel: 'silent', fileDir: dir, maxJobFilesSize: 1500 },
    );
    clusters.push(cluster as JobCluster);
    const results = (await cluster.submit(3).wait()) as unknown[];
    expect(results.slice(0, 2)).toEqual([0, 0]);
    expect(results[2]).toMatch(/exceeds the limit of 1500 bytes for the files of job/);
    // Another job has its own allowance.
    expect(((await cluster.submit(1).wait()) as unknown[])[0]).toBe(0);
    expect(existsSync(path.join(dir, 'part-2.bin'))).toBe(false);
    expect(readdirSync(dir).sort()).toEqual(['part-0.bin', 'part-1.bin']);
  });
});
