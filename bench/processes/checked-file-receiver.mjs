// The receiving process of baseline D (sections/file-pipeline.mjs): accepts one connection at a
// time on 127.0.0.1, reads an 8-byte big-endian length, then that many bytes, which it hashes
// (sha256) and writes to a new file in OUT_DIR in batches of about 4 MiB, one writev each; once
// all are on their way to disk it answers the 32-byte digest. The file is removed before the
// next connection. Told its port through IPC; ends when its parent disconnects.
import { createHash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

const OUT_DIR = process.argv[2];
const BATCH_BYTES = 4 * 1024 * 1024;
let round = 0;

const server = net.createServer((socket) => {
  const file = path.join(OUT_DIR, `received-${round++}.bin`);
  const handle = open(file, 'w');
  const hash = createHash('sha256');
  let expected = -1;
  let header = Buffer.alloc(0);
  let received = 0;
  let batch = [];
  let batchBytes = 0;
  let writes = Promise.resolve();
  const flush = () => {
    const pieces = batch;
    const at = received - batchBytes;
    batch = [];
    batchBytes = 0;
    writes = writes.then(async () => (await handle).writev(pieces, at));
  };
  socket.on('data', (chunk) => {
    if (expected < 0) {
      header = Buffer.concat([header, chunk]);
      if (header.length < 8) return;
      expected = Number(header.readBigUInt64BE(0));
      chunk = header.subarray(8);
    }
    received += chunk.length;
    hash.update(chunk);
    batch.push(chunk);
    batchBytes += chunk.length;
    if (batchBytes >= BATCH_BYTES || received === expected) flush();
    if (received === expected) {
      writes
        .then(async () => (await handle).close())
        .then(() => socket.end(hash.digest()))
        .then(() => rm(file, { force: true }))
        .catch((error) => socket.destroy(error));
    }
  });
  socket.on('error', () => socket.destroy());
});
server.listen(0, '127.0.0.1', () => process.send(server.address().port));
process.on('disconnect', () => process.exit(0));
