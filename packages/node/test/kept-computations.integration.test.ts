/*
 * A real dispynode keeps a computation whose link is lost: its jobs go on, its replies are saved
 * to disk, a new connection takes it back with Reattach, and saved replies survive a restart of
 * the node (SIGTERM and SIGKILL) until they expire. The client is a bare protocol client, so what
 * the node sends is seen frame by frame. Loopback addresses 127.0.44.*.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { connectTls, dispy, encodeArguments, pskClientTls, type Frame } from '@dispy/protocol';
import { startNode, stopAllNodes, type NodeProcess } from '../../../testing/dispynode-process.mjs';
import { startRelay, type TcpRelay } from '../../../testing/tcp-relay.js';
import { SessionClient } from './session-client.js';

const SECRET = 'kept computations';
const clients: SessionClient[] = [];
const relays: TcpRelay[] = [];
const prefixes: string[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.channel.destroy();
  await Promise.all(relays.splice(0).map((relay) => relay.close()));
  await stopAllNodes();
  for (const prefix of prefixes.splice(0)) rmSync(prefix, { recursive: true, force: true });
});

/** A prefix of the test's own, shared by a node and the node started after it. */
function sharedPrefix(): string {
  const prefix = mkdtempSync(path.join(os.tmpdir(), 'dispy-kept-'));
  prefixes.push(prefix);
  return prefix;
}

function startOn(host: string, prefix: string, args: string[] = []): Promise<NodeProcess> {
  return startNode({ host, secret: SECRET, cpus: 2, args: ['--dest-path-prefix', prefix, ...args] });
}

/** An authenticated connection to `host:port`. */
async function connect(host: string, port: number): Promise<SessionClient> {
  // A node with a secret speaks TLS with the secret's pre-shared key.
  const socket = await connectTls({ host, port, tls: pskClientTls(SECRET) });
  const client = new SessionClient(socket);
  clients.push(client);
  const { result } = await client.authenticate(SECRET);
  expect(result.authResult!.ok).toBe(true);
  return client;
}

/** Sets up a program computation whose program sleeps `seconds` and prints its job's argument. */
async function setUp(client: SessionClient, prefix: string, computeId: string, seconds: number): Promise<void> {
  mkdirSync(path.join(prefix, computeId), { recursive: true });
  writeFileSync(path.join(prefix, computeId, 'prog.sh'), `#!/bin/sh\nsleep ${seconds}\necho "ran $1"\n`);
  client.send({
    requestId: 1,
    setup: { computeId, name: computeId, kind: dispy.ComputationKind.PROGRAM, source: 'prog.sh', destPath: computeId, cpus: 2 },
  });
  expect((await client.next('setupReply')).setupReply).toMatchObject({ ok: true });
}

function submit(client: SessionClient, computeId: string, jobId: number): void {
  client.send({ job: { computeId, jobId } }, encodeArguments([`job${jobId}`]));
}

function replyOf(client: SessionClient, jobId: number): Promise<Frame> {
  return client.next('jobReply', (frame) => Number(frame.jobReply!.jobId) === jobId);
}

async function reattach(client: SessionClient, computeId: string): Promise<dispy.IReattachReply> {
  client.send({ requestId: 2, reattach: { computeId } });
  const frame = await client.next('reattachReply');
  expect(frame.requestId).toBe(2);
  return frame.reattachReply!;
}

/** Resolves once the node has read everything sent before (a request it answers after them). */
async function sync(client: SessionClient, computeId: string): Promise<void> {
  client.send({ requestId: 9, setCpus: { computeId, cpus: 2 } });
  await client.next('setCpusReply', (frame) => frame.requestId === 9);
}

/** Job ids of the JobReplies a connection got, in order. */
function repliedJobs(client: SessionClient): number[] {
  return client.frames.filter((frame) => frame.kind === 'jobReply').map((frame) => Number(frame.jobReply!.jobId));
}

/** Waits (bounded) for files the node writes: a write to disk is no event a test can await. */
async function eventually(check: () => void): Promise<void> {
  await vi.waitFor(check, { timeout: 15_000, interval: 50 });
}

const savedReply = (prefix: string, computeId: string, jobId: number) => path.join(prefix, 'saved-replies', computeId, `${jobId}.reply`);

describe('dispynode keeps computations when the link is lost', () => {
  it('a cut link: jobs go on, and a new connection gets the replies it missed and the jobs still held, once', async () => {
    const prefix = sharedPrefix();
    const node = await startOn('127.0.44.1', prefix);
    const relay = await startRelay('127.0.44.2', node.host, node.port);
    relays.push(relay);
    const first = await connect('127.0.44.2', node.port);
    await setUp(first, prefix, 'cut', 0.1);
    submit(first, 'cut', 1);
    await replyOf(first, 1);
    first.send({ jobAck: { computeId: 'cut', jobIds: [1] } });
    // Jobs 2 and 3 end while the link is down; 4 and 5 run on after the new connection.
    writeFileSync(
      path.join(prefix, 'cut', 'prog.sh'),
      '#!/bin/sh\nif [ "$1" = job4 ] || [ "$1" = job5 ]; then sleep 3; fi\necho "ran $1"\n',
    );
    for (const jobId of [2, 3, 4, 5]) submit(first, 'cut', jobId);
    await replyOf(first, 2); // job 2's reply arrives, unacknowledged, before the cut
    await sync(first, 'cut');
    await relay.close();
    await first.closed;
    await node.waitForLog(/client .* disconnected.*computations are kept for it/);
    await eventually(() => expect(existsSync(savedReply(prefix, 'cut', 3))).toBe(true));

    const second = await connect(node.host, node.port);
    const reply = await reattach(second, 'cut');
    expect(reply).toMatchObject({ ok: true, live: true, savedReplies: 2 });
    expect(reply.heldJobIds!.map(Number).sort()).toEqual([4, 5]);
    const resent = await Promise.all([2, 3, 4, 5].map((jobId) => replyOf(second, jobId)));
    expect(resent.map((frame) => frame.jobReply!.stdout)).toEqual(['ran job2\n', 'ran job3\n', 'ran job4\n', 'ran job5\n']);
    expect(repliedJobs(second).sort()).toEqual([2, 3, 4, 5]);
    // The acknowledged reply is not resent; the computation takes jobs on the new connection.
    submit(second, 'cut', 6);
    expect((await replyOf(second, 6)).jobReply!.status).toBe(dispy.JobStatus.FINISHED);
    expect(repliedJobs(second)).not.toContain(1);
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`saved replies survive a restart of the node after ${signal}, and come back on Reattach`, async () => {
      const prefix = sharedPrefix();
      const node = await startOn('127.0.44.3', prefix);
      const first = await connect(node.host, node.port);
      await setUp(first, prefix, 'restart', 0.5);
      for (const jobId of [1, 2, 3]) submit(first, 'restart', jobId);
      await sync(first, 'restart');
      // The client dies before any job ends.
      first.channel.destroy();
      await node.waitForLog(/computations are kept for it/);
      await eventually(() => {
        for (const jobId of [1, 2, 3]) expect(existsSync(savedReply(prefix, 'restart', jobId))).toBe(true);
      });
      await node.waitForLog(/released this node/);
      node.child.kill(signal);
      await new Promise((resolve) =>
        node.child.exitCode !== null || node.child.signalCode !== null ? resolve(undefined) : node.child.once('exit', resolve),
      );
      await node.stop();

      const restarted = await startOn('127.0.44.3', prefix);
      expect(restarted.log).toMatch(/computation restart: saved replies found/);
      const back = await connect(restarted.host, restarted.port);
      expect(await reattach(back, 'restart')).toMatchObject({ ok: true, live: false, savedReplies: 3, heldJobIds: [] });
      const replies = await Promise.all([1, 2, 3].map((jobId) => replyOf(back, jobId)));
      expect(replies.map((frame) => frame.jobReply!.stdout)).toEqual(['ran job1\n', 'ran job2\n', 'ran job3\n']);
      expect(replies.every((frame) => frame.jobReply!.status === dispy.JobStatus.FINISHED)).toBe(true);
      // Acknowledged, a reply is deleted; Close deletes the rest.
      back.send({ jobAck: { computeId: 'restart', jobIds: [1] } });
      await eventually(() => expect(existsSync(savedReply(prefix, 'restart', 1))).toBe(false));
      back.send({ requestId: 3, close: { computeId: 'restart' } });
      await back.next('closeReply');
      expect(existsSync(path.join(prefix, 'saved-replies', 'restart'))).toBe(false);
    });
  }

  it('saved replies expire after the zombie interval, and the node serves another client once the jobs are done', async () => {
    const prefix = sharedPrefix();
    // 0.02 minutes: 1.2 s.
    const node = await startOn('127.0.44.4', prefix, ['--zombie-interval', '0.02']);
    const first = await connect(node.host, node.port);
    await setUp(first, prefix, 'expiring', 0.2);
    submit(first, 'expiring', 1);
    await sync(first, 'expiring');
    first.channel.destroy();
    await eventually(() => expect(existsSync(savedReply(prefix, 'expiring', 1))).toBe(true));
    const other = await connect(node.host, node.port);
    await setUp(other, prefix, 'other', 0);
    await node.waitForLog(/computation expiring: its client was not back within the zombie interval/);
    await eventually(() => expect(existsSync(path.join(prefix, 'saved-replies', 'expiring'))).toBe(false));
    const late = await connect(node.host, node.port);
    expect(await reattach(late, 'expiring')).toMatchObject({ ok: false });
  });

  it('closes a link it hears nothing on for 4 heartbeat intervals (--heartbeat-interval), pulsing meanwhile', async () => {
    const prefix = sharedPrefix();
    const node = await startOn('127.0.44.5', prefix, ['--heartbeat-interval', '0.25']);
    const silent = await connect(node.host, node.port);
    expect(silent.frames.find((frame) => frame.kind === 'authResult')!.authResult).toMatchObject({
      heartbeatInterval: 0.25,
      zombieInterval: 3600,
    });
    await silent.next('pulse');
    await silent.closed;
    await node.waitForLog(/heard nothing for .* s; the link is presumed dead/);
  });
});
