// Baseline C: the same 100 MiB file sent over one loopback TCP connection, with nothing else: the
// client reads it in 1 MiB chunks and writes them, waiting for 'drain' whenever the socket's
// buffer is full; the server counts the bytes and answers one byte when all have arrived. Timed
// from connecting until that answer: the most any transfer over TCP can do on this machine,
// which dispy's file and argument transfers are compared against.
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import net from 'node:net';
import { MiB, createBigFile } from '../lib/big-file.mjs';
import { median } from '../lib/stats.mjs';
import { now, withTimeout } from '../lib/timing.mjs';

const HOST = '127.0.0.1';
const ROUNDS = 5;
const CHUNK_BYTES = MiB;
const ROUND_TIMEOUT_MS = 30_000;

/**
 * A server that counts each connection's bytes and answers one byte once `expected` arrived.
 * `stop()` destroys its connections too, so closing never waits on a round that timed out.
 */
function startCountingServer(expected) {
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    let received = 0;
    socket.on('data', (chunk) => {
      received += chunk.length;
      if (received === expected) socket.end('k');
      else if (received > expected) socket.destroy(new Error(`${received} bytes arrived, ${expected} expected`));
    });
    socket.on('error', () => socket.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () =>
      resolve({
        port: server.address().port,
        stop: () =>
          new Promise((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      }),
    );
  });
}

/** One transfer of `file` to `port`; resolves with the ms from connecting to the server's answer. */
async function sendOnce(port, file) {
  const start = now();
  const socket = net.connect({ host: HOST, port });
  try {
    await once(socket, 'connect');
    // once() rejects on 'error', so a reset connection ends the round instead of hanging it.
    const answered = once(socket, 'data');
    answered.catch(() => undefined);
    // A 100 MiB file in 1 MiB chunks: the loop runs 100 times.
    for await (const chunk of createReadStream(file, { highWaterMark: CHUNK_BYTES })) {
      if (!socket.write(chunk)) await Promise.race([once(socket, 'drain'), answered]);
    }
    await answered;
    return now() - start;
  } finally {
    socket.destroy();
  }
}

export default {
  id: 'tcp-transfer',
  title: 'baseline C: raw loopback TCP transfer of the same 100 MiB file (1 MiB writes)',
  async run() {
    const big = await createBigFile();
    let server;
    try {
      server = await startCountingServer(big.bytes);
      const { port } = server;
      // Not counted, like the dispy file section's first cluster: code is loaded and compiled.
      await withTimeout(sendOnce(port, big.file), ROUND_TIMEOUT_MS, 'the warm-up TCP transfer did not complete');
      const rounds = [];
      for (let round = 0; round < ROUNDS; round++) {
        rounds.push(await withTimeout(sendOnce(port, big.file), ROUND_TIMEOUT_MS, `TCP transfer ${round} did not complete`));
      }
      const rate = big.bytes / MiB / (median(rounds) / 1000);
      return [
        {
          key: 'tcp.transfer.rate',
          label: 'raw loopback TCP transfer (100 MiB)',
          value: rate,
          unit: 'MiB/s',
          digits: 0,
          note: `median of ${ROUNDS} rounds (${rounds.map((ms) => ms.toFixed(0)).join(' / ')} ms) after 1 warm-up; read from the file, connect to reply`,
        },
      ];
    } finally {
      await server?.stop();
      await big.remove();
    }
  },
};
