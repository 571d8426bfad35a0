import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FramedSocket, PROTOCOL_VERSION, newNonce, pskServerOptions } from '@dispy/protocol';
import { DispyJob, JobCluster } from '../src/index.js';
import { NodeConnection } from '@dispy/scheduler';
import { startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';
import { captureClientLog } from './capture-client-log.js';

afterEach(async () => {
  vi.restoreAllMocks();
  await stopAllNodes();
});

describe('shared secret', () => {
  it('refuses a cluster whose secret differs, with a clear error on both sides', async () => {
    const node = await startNode({ host: '127.0.2.2', secret: 'right horse battery' });
    const log = captureClientLog();
    const cluster = new JobCluster((n: number) => n, {
      nodes: [node.host],
      nodePort: node.port,
      ipAddr: '127.0.0.1',
      port: 0,
      secret: 'wrong',
      loglevel: 'error',
    });
    const job = cluster.submit(1);
    await node.waitForLog(/discovery datagrams dropped in the last minute: 1 signed with another secret \(refused\)/);
    await vi.waitFor(() => expect(log()).toMatch(/refused this cluster: the secrets differ/), { timeout: 10_000 });
    expect(await cluster.wait(0.5)).toBe(false);
    expect(job.status).toBe(DispyJob.Created);
    await cluster.close({ timeout: 0 });
    expect(job.status).toBe(DispyJob.Cancelled);
  });

  it('takes the secret from DISPY_SECRET on the node', async () => {
    const node = await startNode({ host: '127.0.2.3', env: { DISPY_SECRET: 'from env' } });
    expect(node.log).not.toMatch(/no secret set/);
    const cluster = new JobCluster((n: number) => n * 3, {
      nodes: [node.host],
      nodePort: node.port,
      ipAddr: '127.0.0.1',
      port: 0,
      secret: 'from env',
      loglevel: 'silent',
    });
    expect(await cluster.submit(3).wait()).toBe(9);
    await cluster.close();
  });

  it('is refused by the node in the TCP handshake, which says why', async () => {
    const node = await startNode({ host: '127.0.2.4', secret: 'node secret' });
    const connection = new NodeConnection({
      host: node.host,
      port: node.port,
      secret: 'client secret',
      clientName: 'test',
      onFrame: () => {},
      onClose: () => {},
    });
    // TLS with the secret's pre-shared key fails first, before anything of dispy is sent.
    await expect(connection.open()).rejects.toThrow(/node 127\.0\.2\.4:\d+'s secret differs from this client's/);
    await node.waitForLog(/its secret differs from this node's/);
  });

  it('refuses a node that answers in plain, knowing no secret', async () => {
    // An impostor that accepts any client but does not know the secret.
    const server = net.createServer((socket) => {
      const channel = new FramedSocket(socket, {
        onFrame: (frame) => {
          if (frame.kind === 'auth') channel.send({ authResult: { ok: true, mac: Buffer.alloc(32) } });
        },
        onClose: () => {},
      });
      channel.send({ hello: { version: PROTOCOL_VERSION, nonce: newNonce() } });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.2.5', resolve));
    try {
      const { port } = server.address() as net.AddressInfo;
      const connection = new NodeConnection({
        host: '127.0.2.5',
        port,
        secret: 's',
        clientName: 'test',
        onFrame: () => {},
        onClose: () => {},
      });
      await expect(connection.open()).rejects.toThrow(/has no secret, or speaks an older protocol \(it answered in plain\)/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('refuses a node that cannot prove the secret back inside TLS', async () => {
    // Its TLS key is the secret's, but its proof in AuthResult is not (dispy's own handshake still runs inside TLS).
    const server = tls.createServer(pskServerOptions('s'), (socket) => {
      const channel = new FramedSocket(socket, {
        onFrame: (frame) => {
          if (frame.kind === 'auth') channel.send({ authResult: { ok: true, mac: Buffer.alloc(32) } });
        },
        onClose: () => {},
      });
      channel.send({ hello: { version: PROTOCOL_VERSION, nonce: newNonce() } });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.2.6', resolve));
    try {
      const { port } = server.address() as net.AddressInfo;
      const connection = new NodeConnection({
        host: '127.0.2.6',
        port,
        secret: 's',
        clientName: 'test',
        onFrame: () => {},
        onClose: () => {},
      });
      await expect(connection.open()).rejects.toThrow(/could not prove the shared secret/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
