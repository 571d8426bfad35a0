// Baseline B: the round-trip time of a small message over one persistent loopback TCP
// connection: the floor under any request/reply over TCP on this machine, which dispy's
// sequential job latency is compared against.
import net from 'node:net';
import { summarize } from '../lib/stats.mjs';
import { now, withTimeout } from '../lib/timing.mjs';

const HOST = '127.0.0.1';
const WARMUP = 100;
const ROUND_TRIPS = 1_000;
/** A 4-byte length prefix and 28 bytes of payload: about the size of a tiny dispy frame. */
const PAYLOAD_BYTES = 28;
const ROUND_TRIP_TIMEOUT_MS = 5_000;

/** An echo server: sends back every byte it receives, so the framing arrives intact. */
function startEchoServer() {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('error', () => socket.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve(server));
  });
}

function connect(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: HOST, port }, () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

export default {
  id: 'tcp',
  title: 'baseline B: TCP round trip over one loopback connection (setNoDelay)',
  async run() {
    const server = await startEchoServer();
    let socket;
    try {
      socket = await connect(server.address().port);
      socket.setNoDelay(true);

      const message = Buffer.alloc(4 + PAYLOAD_BYTES, 0x61);
      message.writeUInt32BE(PAYLOAD_BYTES, 0);
      // The echo may arrive split into several chunks; a round trip ends when all bytes are back.
      let pending = 0;
      let onComplete;
      socket.on('data', (chunk) => {
        pending -= chunk.length;
        if (pending <= 0 && onComplete) onComplete();
      });
      const roundTrip = () =>
        new Promise((resolve) => {
          pending = message.length;
          onComplete = resolve;
          socket.write(message);
        });

      const samples = [];
      for (let i = 0; i < WARMUP + ROUND_TRIPS; i++) {
        const start = now();
        await withTimeout(roundTrip(), ROUND_TRIP_TIMEOUT_MS, `TCP round trip ${i} did not complete`);
        const elapsedUs = (now() - start) * 1000;
        if (i >= WARMUP) samples.push(elapsedUs);
      }
      const rtt = summarize(samples);
      return [
        {
          key: 'tcp.rtt.median',
          label: 'TCP loopback round trip, median',
          value: rtt.median,
          unit: 'µs',
          digits: 1,
          note: `${rtt.count} round trips of ${message.length} B after ${WARMUP} warm-up; min ${rtt.min.toFixed(1)} µs`,
        },
        {
          key: 'tcp.rtt.p99',
          label: 'TCP loopback round trip, p99',
          value: rtt.p99,
          unit: 'µs',
          digits: 1,
          note: `max ${rtt.max.toFixed(1)} µs`,
        },
      ];
    } finally {
      socket?.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
    }
  },
};
