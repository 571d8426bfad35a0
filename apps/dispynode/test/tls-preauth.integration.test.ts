/*
 * Connections to a TLS dispynode that never authenticate: silent TCP connections (no
 * ClientHello), TLS handshakes stalled halfway, and TLS connections secured that never send Auth.
 * Each counts in the node's caps on waiting connections from its TCP accept (10 per address, 64
 * in all), and a stalled handshake is closed when its timeout passes.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { JobCluster } from '@dispy/client';
import { startNode, stopAllNodes, type NodeProcess } from '../../../testing/dispynode-process.mjs';
import { makeTestCertificates, type TestCertificates } from '../../../testing/certificates.js';

// This file's nodes serve on 127.0.62.*; attackers connect from 127.0.63.*.
const IPS = ['127.0.62.1', '127.0.62.2', '127.0.62.3'];
const SECRET = 'tls pre-authentication tests secret';
/** The first bytes of a TLS ClientHello record, and no more: the handshake stalls there. */
const STALLED_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);

let certs: TestCertificates;
const sockets = new Set<net.Socket>();
const clusters: JobCluster[] = [];

beforeAll(() => {
  certs = makeTestCertificates(IPS);
});
afterAll(() => certs.remove());
afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 2 })));
  await stopAllNodes();
});

function tlsNode(host: string): Promise<NodeProcess> {
  return startNode({ host, cpus: 1, secret: SECRET, args: ['--certfile', certs.nodeCert, '--keyfile', certs.nodeKey] });
}

/** What became of an attacker's connection: whether the node sent it anything before it closed. */
interface Attacker {
  socket: net.Socket;
  heard: boolean;
}

function track(socket: net.Socket): Attacker {
  sockets.add(socket);
  const attacker = { socket, heard: false };
  socket.on('error', () => undefined); // the node hanging up: expected
  socket.on('data', () => (attacker.heard = true));
  return attacker;
}

/** A TCP connection from `localAddress` that sends `first` (nothing when undefined), then nothing more. */
function rawConnection(node: NodeProcess, localAddress: string, first?: Buffer): Promise<Attacker> {
  return new Promise((resolve) => {
    const attacker = track(net.connect({ host: node.host, port: node.port, localAddress }));
    attacker.socket.once('connect', () => {
      if (first) attacker.socket.write(first);
      resolve(attacker);
    });
    attacker.socket.once('close', () => resolve(attacker));
  });
}

/** A TLS connection from `localAddress`, verified and secured, that never sends Auth; resolves once secured (or closed). */
function securedConnection(node: NodeProcess, localAddress: string): Promise<Attacker> {
  return new Promise((resolve) => {
    const tcp = net.connect({ host: node.host, port: node.port, localAddress });
    sockets.add(tcp);
    const socket = tls.connect({ socket: tcp, host: node.host, ca: readFileSync(certs.ca) });
    const attacker = track(socket);
    socket.once('secureConnect', () => resolve(attacker));
    socket.once('close', () => resolve(attacker));
  });
}

/** Resolves once `count` of the attackers' sockets have closed. */
function closedCount(attackers: Attacker[], count: number): Promise<void> {
  return new Promise((resolve) => {
    let closed = 0;
    const onClose = (): void => {
      if (++closed === count) resolve();
    };
    if (count <= 0) resolve();
    for (const { socket } of attackers) {
      if (socket.destroyed) onClose();
      else socket.once('close', onClose);
    }
  });
}

async function legitimateResult(node: NodeProcess): Promise<unknown> {
  const cluster = new JobCluster((n: number) => n + 1, {
    nodes: [node.host],
    nodePort: node.port,
    ipAddr: '127.0.0.1',
    port: 0,
    secret: SECRET,
    cafile: certs.ca,
    loglevel: 'silent',
  });
  clusters.push(cluster);
  return cluster.submit(41).wait();
}

describe('a TLS node under connections that never authenticate', () => {
  it('counts TLS connections from their TCP accept: one address keeps at most 10 waiting, whatever stage they are at', async () => {
    const node = await tlsNode(IPS[0]!);
    const from = '127.0.63.1';
    // Accepted in order: 4 stalled halfway through their ClientHello, 3 secured without Auth,
    // 3 silent (each is told after 1 s that the node requires TLS).
    const waiting: Attacker[] = [];
    for (let i = 0; i < 4; i++) waiting.push(await rawConnection(node, from, STALLED_HELLO));
    for (let i = 0; i < 3; i++) waiting.push(await securedConnection(node, from));
    for (let i = 0; i < 3; i++) waiting.push(await rawConnection(node, from));
    // The 11th and 12th are refused at once, told nothing (a silent one would hear why after 1 s).
    const refused = [await rawConnection(node, from), await rawConnection(node, from, STALLED_HELLO)];
    await closedCount(refused, refused.length);
    expect(refused.map(({ heard }) => heard)).toEqual([false, false]);
    expect(waiting.slice(0, 7).every(({ socket }) => !socket.destroyed)).toBe(true);
    expect(node.log).toMatch(/refused a connection from 127\.0\.63\.1: 10 from it wait to authenticate already/);
    // Another address still gets in.
    expect(await legitimateResult(node)).toBe(42);
  });

  it('keeps 64 waiting in all, stalled TLS handshakes included, evicting the oldest, and still serves a client', async () => {
    const node = await tlsNode(IPS[1]!);
    const attackers: Attacker[] = [];
    // 4 addresses × 10 handshakes stalled halfway, then 4 × 10 TLS connections secured without Auth:
    // 80 waiting, 16 over the total cap.
    for (let a = 0; a < 4; a++) {
      for (let c = 0; c < 10; c++) attackers.push(await rawConnection(node, `127.0.63.${10 + a}`, STALLED_HELLO));
    }
    for (let a = 0; a < 4; a++) {
      for (let c = 0; c < 10; c++) attackers.push(await securedConnection(node, `127.0.63.${20 + a}`));
    }
    await closedCount(attackers, attackers.length - 64);
    expect(attackers.filter(({ socket }) => !socket.destroyed)).toHaveLength(64);
    // The oldest went: the first 16 stalled handshakes.
    expect(attackers.slice(0, 16).every(({ socket }) => socket.destroyed)).toBe(true);
    expect(node.log).toMatch(/64 connections wait to authenticate: the oldest is closed for each new one/);
    expect(await legitimateResult(node)).toBe(42);
  });

  it('closes a TLS handshake stalled halfway when its timeout passes', async () => {
    const node = await tlsNode(IPS[2]!);
    const stalled = await rawConnection(node, '127.0.63.30', STALLED_HELLO);
    // The handshake timeout is 10 s; bounded by vitest's timeout below.
    await closedCount([stalled], 1);
    expect(stalled.socket.destroyed).toBe(true);
    await node.waitForLog(/127\.0\.63\.30: its TLS handshake did not complete in time; refused/, 5_000);
  }, 30_000);
});
