// Baseline D: the work a checked file transfer must do, in plain Node, with nothing else. One
// process reads the same 100 MiB file in 4 MiB chunks, hashes each (sha256) and writes it to a
// loopback TCP connection (waiting for 'drain' past 4 MiB queued); another process (forked) hashes
// what arrives and writes it to a new file, then answers its digest, which must match. Timed from
// connecting until that answer. dispy's file transfer does this and more (framing, confinement,
// its own protocol), so this is the most dispy could do on this machine: the gap between it and
// raw TCP (baseline C) is the cost of the checksums and of writing to disk.
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MiB, createBigFile } from '../lib/big-file.mjs';
import { median } from '../lib/stats.mjs';
import { now, withTimeout } from '../lib/timing.mjs';

const HOST = '127.0.0.1';
const ROUNDS = 5;
const CHUNK_BYTES = 4 * MiB;
const IN_FLIGHT_BYTES = 4 * MiB;
const ROUND_TIMEOUT_MS = 30_000;
const RECEIVER = fileURLToPath(new URL('../processes/checked-file-receiver.mjs', import.meta.url));

/** One checked transfer of `file` (`bytes` long) to the receiver on `port`; resolves with its ms. */
async function sendOnce(port, file, bytes) {
  const start = now();
  const socket = net.connect({ host: HOST, port });
  try {
    await once(socket, 'connect');
    socket.setNoDelay(true);
    const answered = once(socket, 'data');
    answered.catch(() => undefined);
    const header = Buffer.alloc(8);
    header.writeBigUInt64BE(BigInt(bytes));
    socket.write(header);
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(file, { highWaterMark: CHUNK_BYTES })) {
      hash.update(chunk);
      if (!socket.write(chunk) && socket.writableLength > IN_FLIGHT_BYTES) await Promise.race([once(socket, 'drain'), answered]);
    }
    const [digest] = await answered;
    if (!hash.digest().equals(digest)) throw new Error('the receiver hashed something else than was sent');
    return now() - start;
  } finally {
    socket.destroy();
  }
}

export default {
  id: 'file-pipeline',
  title: 'baseline D: the same 100 MiB file, sha256 on both sides and written to disk, in plain Node',
  async run() {
    const big = await createBigFile();
    const outDir = await mkdtemp(path.join(os.tmpdir(), 'dispy-bench-pipeline-'));
    const receiver = fork(RECEIVER, [outDir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    try {
      const [port] = await withTimeout(once(receiver, 'message'), ROUND_TIMEOUT_MS, 'the receiving process did not start');
      const transfer = (what) => withTimeout(sendOnce(port, big.file, big.bytes), ROUND_TIMEOUT_MS, `${what} did not complete`);
      await transfer('the warm-up transfer');
      const rounds = [];
      for (let round = 0; round < ROUNDS; round++) rounds.push(await transfer(`checked transfer ${round}`));
      return [
        {
          key: 'pipeline.file.rate',
          label: 'plain Node checked transfer (100 MiB, sha256 both sides, to disk)',
          value: big.bytes / MiB / (median(rounds) / 1000),
          unit: 'MiB/s',
          digits: 0,
          note: `median of ${ROUNDS} rounds (${rounds.map((ms) => ms.toFixed(0)).join(' / ')} ms) after 1 warm-up; two processes`,
        },
      ];
    } finally {
      receiver.kill();
      await once(receiver, 'exit').catch(() => undefined);
      await rm(outDir, { recursive: true, force: true });
      await big.remove();
    }
  },
};
