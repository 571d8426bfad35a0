/*
 * A node serving several computations at once (issue 11), seen frame by frame by bare protocol
 * clients: each is told its share of the CPUs, `status()` lists every computation, and a setup
 * the node cannot take now (exclusive, --max-clients) is answered "retry". Loopback 127.0.150.2x.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectTls, dispy, encodeArguments, pskClientTls } from '@dispy/protocol';
import { DispyNodeServer } from '../src/node-server.js';
import type { NodeOptions } from '../src/options.js';
import { SessionClient } from './session-client.js';

const SECRET = 'several at once';
let prefix: string;
let node: DispyNodeServer | undefined;
const clients: SessionClient[] = [];

beforeEach(() => {
  prefix = mkdtempSync(path.join(os.tmpdir(), 'dispy-shared-node-'));
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.channel.destroy();
  await node?.close();
  node = undefined;
  rmSync(prefix, { recursive: true, force: true });
});

async function serve(host: string, options: NodeOptions = {}): Promise<DispyNodeServer> {
  node = new DispyNodeServer({ hosts: [host], port: 0, secret: SECRET, destPathPrefix: prefix, loglevel: 'silent', cpus: 2, ...options });
  await node.start();
  return node;
}

async function connect(server: DispyNodeServer): Promise<SessionClient> {
  // A node with a secret speaks TLS with the secret's pre-shared key.
  const client = new SessionClient(await connectTls({ ...server.address, tls: pskClientTls(SECRET) }));
  clients.push(client);
  expect((await client.authenticate(SECRET)).result.authResult!.ok).toBe(true);
  return client;
}

/** Sends the Setup of a program computation; resolves with the node's SetupReply. */
async function setUp(client: SessionClient, computeId: string, exclusive = false): Promise<dispy.ISetupReply> {
  mkdirSync(path.join(prefix, computeId), { recursive: true });
  writeFileSync(path.join(prefix, computeId, 'prog.sh'), '#!/bin/sh\nsleep 0.3\n');
  client.send({
    requestId: 1,
    setup: { computeId, name: `name-${computeId}`, kind: dispy.ComputationKind.PROGRAM, source: 'prog.sh', destPath: computeId, exclusive },
  });
  return (await client.next('setupReply')).setupReply!;
}

/** The next NodeCpus the client is told (not one taken before). */
async function toldCpus(client: SessionClient): Promise<number> {
  return (await client.next('nodeCpus')).nodeCpus!.cpus ?? 0;
}

describe('a node serving several computations at once', () => {
  it('sets up computations of two clients, tells each its share of the CPUs while the other has jobs, and lists both in status()', async () => {
    const server = await serve('127.0.150.21');
    const first = await connect(server);
    expect(await setUp(first, 'one')).toMatchObject({ ok: true, cpus: 2 });
    first.send({ job: { computeId: 'one', jobId: 1 } }, encodeArguments([]));
    const second = await connect(server);
    // The first has a job: the second may fill half the node.
    expect(await setUp(second, 'two')).toMatchObject({ ok: true, cpus: 2 });
    expect(await toldCpus(second)).toBe(1);
    second.send({ job: { computeId: 'two', jobId: 1 } }, encodeArguments([]));
    expect(await toldCpus(first)).toBe(1);
    // Once the second's job is done, the first may fill the node again (and the second once the first's is).
    await second.next('jobReply');
    await first.next('jobReply');
    expect([await toldCpus(first), await toldCpus(second)]).toEqual([2, 2]);
    expect(first.frames.filter((frame) => frame.kind === 'nodeCpus').map((frame) => frame.nodeCpus!.cpus)).toEqual([1, 2]);
    const status = server.status();
    expect(status.clients).toHaveLength(2);
    expect(status.computations.map(({ computeId, name, attached, exclusive }) => ({ computeId, name, attached, exclusive }))).toEqual([
      { computeId: 'one', name: 'name-one', attached: true, exclusive: false },
      { computeId: 'two', name: 'name-two', attached: true, exclusive: false },
    ]);
    second.send({ requestId: 2, close: { computeId: 'two' } });
    await second.next('closeReply');
    expect(server.status().computations.map(({ computeId }) => computeId)).toEqual(['one']);
  });

  it('answers "retry" to an exclusive computation while another runs, and to any while an exclusive one runs', async () => {
    const server = await serve('127.0.150.22');
    const first = await connect(server);
    expect(await setUp(first, 'plain')).toMatchObject({ ok: true });
    const second = await connect(server);
    const refused = await setUp(second, 'alone', true);
    expect(refused).toMatchObject({ ok: false, retry: true });
    expect(refused.error).toContain('an exclusive one waits until none does');
    first.send({ requestId: 2, close: { computeId: 'plain' } });
    await first.next('closeReply');
    second.send({
      requestId: 3,
      setup: {
        computeId: 'alone',
        name: 'alone',
        kind: dispy.ComputationKind.PROGRAM,
        source: 'prog.sh',
        destPath: 'alone',
        exclusive: true,
      },
    });
    expect((await second.next('setupReply', (frame) => frame.requestId === 3)).setupReply).toMatchObject({ ok: true });
    const third = await connect(server);
    const held = await setUp(third, 'later');
    expect(held).toMatchObject({ ok: false, retry: true });
    expect(held.error).toContain('computation alone runs on this node alone (exclusive)');
    expect(server.status().computations).toMatchObject([{ computeId: 'alone', exclusive: true }]);
  });

  it('--max-clients: answers "retry" to one computation too many, and takes it once one closes', async () => {
    const server = await serve('127.0.150.23', { maxClients: 1 });
    const first = await connect(server);
    expect(await setUp(first, 'first')).toMatchObject({ ok: true });
    const second = await connect(server);
    const refused = await setUp(second, 'second');
    expect(refused).toMatchObject({ ok: false, retry: true });
    expect(refused.error).toContain('--max-clients');
    first.send({ requestId: 2, close: { computeId: 'first' } });
    await first.next('closeReply');
    second.send({
      requestId: 3,
      setup: { computeId: 'second', name: 'second', kind: dispy.ComputationKind.PROGRAM, source: 'prog.sh', destPath: 'second' },
    });
    expect((await second.next('setupReply', (frame) => frame.requestId === 3)).setupReply).toMatchObject({ ok: true });
  });
});
