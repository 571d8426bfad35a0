// The large file the transfer benchmarks send: generated in a fresh temporary directory with a
// write stream, and removed again by the section that made it. Its content is the same in every
// section and every run (a fixed pseudo-random block repeated), so dispy and the raw TCP baseline
// move exactly the same bytes, and nothing along the way can compress or skip zeros.
import { once } from 'node:events';
import { createWriteStream, rmSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const MiB = 1024 * 1024;
/** The size of the file the transfer sections send. */
export const BIG_FILE_BYTES = 100 * MiB;
/** Its base name (the dispy job refers to it by this name in its computation directory). */
export const BIG_FILE_NAME = 'dispy-bench-100MiB.bin';

// Directories not removed yet: if the process exits before a section's cleanup ran (an uncaught
// error, process.exit), they are removed synchronously here so no 100 MiB file is left behind.
const live = new Set();
process.on('exit', () => {
  for (const dir of live) rmSync(dir, { recursive: true, force: true });
});

/** One MiB of pseudo-random bytes from a fixed seed (xorshift32): the same on every run. */
function block() {
  const bytes = new Uint8Array(MiB);
  const words = new Uint32Array(bytes.buffer);
  let x = 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return Buffer.from(bytes.buffer);
}

/**
 * Writes a `bytes`-long file (a multiple of 1 MiB) named `name` in a new temporary directory
 * through a write stream, waiting on 'drain' whenever its buffer is full.
 * @returns {Promise<{ file: string, dir: string, bytes: number, remove: () => Promise<void> }>}
 */
export async function createBigFile({ bytes = BIG_FILE_BYTES, name = BIG_FILE_NAME } = {}) {
  if (bytes % MiB !== 0) throw new Error(`the file size must be a multiple of 1 MiB, not ${bytes}`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dispy-bench-file-'));
  live.add(dir);
  const remove = async () => {
    await rm(dir, { recursive: true, force: true });
    live.delete(dir);
  };
  const file = path.join(dir, name);
  try {
    const data = block();
    const stream = createWriteStream(file);
    const failed = once(stream, 'error').then(([error]) => Promise.reject(error));
    failed.catch(() => undefined);
    for (let written = 0; written < bytes; written += data.length) {
      if (!stream.write(data)) await Promise.race([once(stream, 'drain'), failed]);
    }
    stream.end();
    await Promise.race([once(stream, 'finish'), failed]);
    await Promise.race([once(stream, 'close'), failed]);
    // On disk before anyone times reading it: otherwise the kernel's writeback of 100 MiB of
    // dirty pages competes with the first measurements for the CPUs.
    const handle = await open(file, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    await remove();
    throw error;
  }
  return { file, dir, bytes, remove };
}

export { MiB };
