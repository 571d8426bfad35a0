import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { NodeConnection } from '@dispy/scheduler';
import { JobCluster } from '../src/index.js';
import { startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';

const cleanups: Array<() => void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  await stopAllNodes();
});

async function writeBigFile(file: string, bytes: number): Promise<void> {
  const out = createWriteStream(file);
  const block = Buffer.alloc(1024 * 1024, 0x5a);
  for (let written = 0; written < bytes; written += block.length) {
    if (!out.write(block)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

describe('large files', () => {
  // How much memory the transfer takes on either side is measured by `pnpm bench` (dispy-memory).
  it('sends a 200 MB depends file, which arrives at its full size (its sha256 checked on the way)', async () => {
    const size = 200 * 1024 * 1024;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-big-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const big = path.join(dir, 'big.bin');
    await writeBigFile(big, size);
    const node = await startNode({ host: '127.0.10.2', cpus: 1, args: ['--max-file-size', '0'] });
    const cluster = new JobCluster(() => require('node:fs').statSync('big.bin').size, {
      nodes: [node.host],
      nodePort: node.port,
      ipAddr: '127.0.0.1',
      port: 0,
      loglevel: 'silent',
      depends: [big],
    });
    try {
      expect(await cluster.submit().wait()).toBe(size);
    } finally {
      await cluster.close();
    }
  }, 120_000);

  it('refuses a file over the node limit, and names outside the directory', async () => {
    const node = await startNode({ host: '127.0.10.3', cpus: 1, args: ['--max-file-size', '1k'] });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-limit-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const big = path.join(dir, 'two-k.bin');
    await writeBigFile(big, 2048);
    const cluster = new JobCluster((n: number) => n, {
      nodes: [node.host],
      nodePort: node.port,
      ipAddr: '127.0.0.1',
      port: 0,
      loglevel: 'silent',
      depends: [big],
    });
    await node.waitForLog(/file two-k.bin of \d+ bytes exceeds this node's limit of 1024 bytes \(--max-file-size\)/);
    await cluster.close();

    // A raw client that names files outside the computation's directory.
    const connection = new NodeConnection({
      host: node.host,
      port: node.port,
      secret: '',
      clientName: 't',
      onFrame: () => {},
      onClose: () => {},
    });
    await connection.open();
    const escaping = await connection.setup({
      computeId: 'raw',
      name: 'f',
      source: '(n) => n',
      cpus: 1,
      cleanup: true,
      files: [{ name: '../escape.txt', size: 1 }],
    });
    expect(escaping).toMatchObject({ ok: false, error: expect.stringMatching(/must not contain "\.\."/) });
    const absolute = await connection.setup({
      computeId: 'raw2',
      name: 'f',
      source: '(n) => n',
      cpus: 1,
      cleanup: true,
      files: [{ name: '/etc/passwd', size: 1 }],
    });
    expect(absolute).toMatchObject({ ok: false, error: expect.stringMatching(/must be relative/) });
    const traversal = await connection.setup({
      computeId: 'raw3',
      name: 'f',
      source: '(n) => n',
      cpus: 1,
      cleanup: true,
      destPath: '../../outside',
    });
    expect(traversal).toMatchObject({ ok: false, error: expect.stringMatching(/must not contain "\.\."/) });
    connection.destroy();
  });
});
