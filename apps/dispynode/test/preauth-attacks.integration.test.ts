/*
 * What an attacker who does not know the secret can do to a node: the bytes it would send, sent
 * to a real dispynode on loopback, with the node's memory and its answer to a legitimate client
 * measured while the attack goes on.
 */
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { JobCluster } from '@dispy/client';
import { startNode, stopAllNodes, type NodeProcess } from '../../../testing/dispynode-process.mjs';

const MiB = 1024 * 1024;
const sockets = new Set<net.Socket>();
const clusters: JobCluster[] = [];

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 2 })));
  await stopAllNodes();
});

/** A field's key and a length prefix, as protobuf writes them (wire type 2). */
function lengthDelimited(field: number, body: Buffer): Buffer {
  return Buffer.concat([varint((field << 3) | 2), varint(body.length), body]);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

/** VmRSS and VmHWM (its peak) of a process, in bytes. */
function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

/** Connects from `localAddress` (a loopback address), keeping the socket for cleanup. */
function connect(node: NodeProcess, localAddress = '127.0.0.2'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: node.host, port: node.port, localAddress });
    sockets.add(socket);
    socket.on('error', () => undefined); // the node hanging up mid-write: expected
    socket.once('connect', () => resolve(socket));
    socket.once('close', () => reject(new Error(`connection from ${localAddress} closed before it was made`)));
  });
}

/** Resolves when the socket has closed; `false` if it is still open after `ms`. */
function closedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Resolves once `count` of `sockets` have closed. */
function closedCount(sockets: net.Socket[], count: number): Promise<void> {
  return new Promise((resolve) => {
    let closed = 0;
    const onClose = () => {
      if (++closed === count) resolve();
    };
    if (count <= 0) resolve();
    for (const socket of sockets) {
      if (socket.destroyed) onClose();
      else socket.once('close', onClose);
    }
  });
}

/** Writes `bytes` zeros in 1 MiB pieces, waiting for room, until done or the node hangs up. */
async function flood(socket: net.Socket, bytes: number): Promise<number> {
  const piece = Buffer.alloc(MiB);
  let sent = 0;
  while (sent < bytes && !socket.destroyed) {
    const room = socket.write(piece.subarray(0, Math.min(MiB, bytes - sent)));
    sent += Math.min(MiB, bytes - sent);
    if (!room) await new Promise((resolve) => (socket.once('drain', resolve), socket.once('close', resolve)));
  }
  return sent;
}

/** A legitimate client's job, run while the attack goes on. */
async function legitimateResult(node: NodeProcess): Promise<unknown> {
  const cluster = new JobCluster((n: number) => n + 1, {
    nodes: [node.host],
    nodePort: node.port,
    ipAddr: '127.0.0.1',
    port: 0,
    loglevel: 'silent',
  });
  clusters.push(cluster);
  return cluster.submit(41).wait();
}

describe('a node under attack before authentication', () => {
  it('hangs up on one 24 MB frame of packed zeros (a JobAck of millions of entries) without buffering it', async () => {
    const node = await startNode({ host: '127.0.60.1', cpus: 1 });
    const before = memory(node.child.pid!);
    const attacker = await connect(node);
    // Frame { jobAck (8) { jobIds (1), packed: 24 MiB of varint 0 } }, after its 4-byte length.
    const zeros = 24 * MiB;
    const message = lengthDelimited(8, lengthDelimited(1, Buffer.alloc(zeros)));
    const header = Buffer.alloc(4);
    header.writeUInt32BE(message.length);
    attacker.write(Buffer.concat([header, message.subarray(0, message.length - zeros)]));
    const sending = flood(attacker, zeros);
    expect(await legitimateResult(node)).toBe(42);
    await sending;
    expect(await closedWithin(attacker, 5_000)).toBe(true);
    const after = memory(node.child.pid!);
    expect(after.rss - before.rss).toBeLessThan(50 * MiB);
    expect(after.peak - before.peak).toBeLessThan(50 * MiB);
    expect(node.child.exitCode).toBeNull();
  });

  it('hangs up on 20 connections each announcing a 64 MiB attachment, and serves a client meanwhile', async () => {
    const node = await startNode({ host: '127.0.60.2', cpus: 1 });
    const before = memory(node.child.pid!);
    // A frame with an attachment: length word with the high bit set, the attachment's length,
    // then a FileChunk (14) message; 64 MiB in all, the most any frame may be.
    const message = lengthDelimited(14, Buffer.alloc(0));
    const header = Buffer.alloc(8);
    header.writeUInt32BE((0x80000000 | message.length) >>> 0, 0);
    header.writeUInt32BE(64 * MiB - message.length, 4);
    const attackers = await Promise.all(Array.from({ length: 20 }, (_, i) => connect(node, `127.0.0.${20 + i}`)));
    const floods = attackers.map((socket) => {
      socket.write(Buffer.concat([header, message]));
      return flood(socket, 64 * MiB);
    });
    expect(await legitimateResult(node)).toBe(42);
    await Promise.all(floods);
    for (const socket of attackers) expect(await closedWithin(socket, 5_000)).toBe(true);
    const after = memory(node.child.pid!);
    expect(after.rss - before.rss).toBeLessThan(50 * MiB);
    expect(after.peak - before.peak).toBeLessThan(50 * MiB);
  });

  it('caps idle unauthenticated connections per address and in total, and still serves a client', async () => {
    const node = await startNode({ host: '127.0.60.3', cpus: 1 });
    const descriptors = () => readdirSync(`/proc/${node.child.pid}/fd`).length;
    const baseline = descriptors();
    // 25 addresses, 12 connections each, one after another: an address may keep 10 waiting
    // (its 11th and 12th are refused), and the node keeps 64 in all (each newer one evicts
    // the oldest).
    const attackers: Array<{ socket: net.Socket; greeted: boolean }> = [];
    for (let a = 0; a < 25; a++) {
      for (let c = 0; c < 12; c++) {
        const socket = await connect(node, `127.0.0.${100 + a}`).catch(() => undefined);
        if (!socket) continue;
        const attacker = { socket, greeted: false };
        socket.once('data', () => (attacker.greeted = true));
        attackers.push(attacker);
      }
    }
    // The node closes all but 64 of them, each on its own: wait for those closes.
    await closedCount(
      attackers.map(({ socket }) => socket),
      attackers.length - 64,
    );
    expect(attackers.filter(({ socket }) => !socket.destroyed)).toHaveLength(64);
    // Refused ones were closed before the node said Hello; evicted ones after.
    const refused = attackers.filter(({ socket, greeted }) => socket.destroyed && !greeted);
    expect(refused.length).toBe(50);
    expect(descriptors()).toBeLessThan(baseline + 64 + 16);

    expect(await legitimateResult(node)).toBe(42);
    expect(node.log).toMatch(/64 connections wait to authenticate: the oldest is closed for each new one/);
    expect(node.log).toMatch(/refused a connection from 127\.0\.0\.\d+: 10 from it wait to authenticate already/);
  });
});
