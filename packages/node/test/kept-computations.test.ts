/*
 * Computations outlive their connection: a lost link detaches them (jobs go on, replies are saved
 * to disk), a new connection takes them back with Reattach and gets every reply not acknowledged,
 * and the node's heartbeat notices a silent link. In-memory connections and fake timers; the
 * jobs are real program runs.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { dispy, encodeArguments, type Frame } from '@dispy/protocol';
import { createLogger, SAVED_REPLIES_DIR } from '@dispy/protocol/internal';
import { socketPair, type MemorySocket } from '../../../testing/socket-pair.js';
import { ClientSession } from '../src/session/client-session.js';
import { NodeComputations } from '../src/session/node-computations.js';
import { SessionClient, fakeNode } from './session-client.js';

type Node = ReturnType<typeof fakeNode>;

interface Connection {
  client: SessionClient;
  socket: MemorySocket;
  session: ClientSession;
  ended: Promise<void>;
}

let node: Node;
const connections: Connection[] = [];

/** A new connection to `node`, authenticated. */
async function connect(): Promise<Connection> {
  const sockets = socketPair();
  const client = new SessionClient(sockets.client);
  let resolveEnded!: () => void;
  const ended = new Promise<void>((resolve) => (resolveEnded = resolve));
  const session = new ClientSession(sockets.server.asSocket(), node, () => resolveEnded());
  const connection = { client, socket: sockets.client, session, ended };
  connections.push(connection);
  const { result } = await client.authenticate('sesame');
  expect(result.authResult!.ok).toBe(true);
  return connection;
}

/** Cuts a connection as a network fault would (no Close), and waits until the node has seen it. */
async function cut(connection: Connection): Promise<void> {
  connection.socket.destroy();
  await connection.ended;
}

/** Sets up program computation `computeId` (a shell script that sleeps `seconds`, then exits). */
async function setUp(connection: Connection, computeId: string, seconds = 0, exclusive = false): Promise<void> {
  const dir = path.join(node.destPathPrefix, computeId);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'prog.sh'), `#!/bin/sh\nsleep ${seconds}\nexit 0\n`);
  connection.client.send({
    requestId: 1,
    setup: { computeId, name: computeId, kind: dispy.ComputationKind.PROGRAM, source: 'prog.sh', destPath: computeId, cpus: 2, exclusive },
  });
  expect((await connection.client.next('setupReply')).setupReply).toMatchObject({ ok: true });
}

function submit(connection: Connection, computeId: string, jobId: number): void {
  connection.client.send({ job: { computeId, jobId } }, encodeArguments([]));
}

/** The next JobReply (not provisional) of job `jobId`. */
async function replyOf(connection: Connection, jobId: number): Promise<Frame> {
  return connection.client.next('jobReply', (frame) => Number(frame.jobReply!.jobId) === jobId);
}

async function reattach(connection: Connection, computeId: string, requestId = 5): Promise<dispy.IReattachReply> {
  connection.client.send({ requestId, reattach: { computeId } });
  const frame = await connection.client.next('reattachReply');
  expect(frame.requestId).toBe(requestId);
  return frame.reattachReply!;
}

function savedDir(computeId: string): string {
  return path.join(node.destPathPrefix, SAVED_REPLIES_DIR, computeId);
}

/** Waits (bounded) until something on disk is as expected: disk writes are not events a test can await. */
async function eventually(check: () => void): Promise<void> {
  await vi.waitFor(check, { timeout: 10_000, interval: 20 });
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  node = fakeNode();
});

afterEach(async () => {
  for (const connection of connections.splice(0)) {
    connection.socket.destroy();
    await connection.ended;
  }
  await node.close();
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
  node.dispose();
});

describe('kept computations: the heartbeat', () => {
  it('tells the client its heartbeat and zombie intervals when it authenticates', async () => {
    const sockets = socketPair();
    const client = new SessionClient(sockets.client);
    let resolveEnded!: () => void;
    const ended = new Promise<void>((resolve) => (resolveEnded = resolve));
    new ClientSession(sockets.server.asSocket(), node, () => resolveEnded());
    connections.push({ client, socket: sockets.client, session: undefined as unknown as ClientSession, ended });
    const { result } = await client.authenticate('sesame');
    expect(result.authResult).toMatchObject({ ok: true, heartbeatInterval: 10, zombieInterval: 60 });
  });

  it('sends a Pulse when it has sent nothing for the heartbeat interval, computation or not', async () => {
    const connection = await connect();
    expect(connection.client.frames.some((frame) => frame.kind === 'pulse')).toBe(false);
    await vi.advanceTimersByTimeAsync(12_500);
    expect((await connection.client.next('pulse')).pulse).toMatchObject({ busy: 0 });
  });

  it('presumes a silent link dead after 4 heartbeat intervals and detaches the computation: its job goes on', async () => {
    const connection = await connect();
    await setUp(connection, 'silent', 0.3);
    submit(connection, 'silent', 1);
    // The client says nothing more (its side of the link is dead); the node pulses meanwhile.
    await vi.advanceTimersByTimeAsync(30_000);
    expect(connection.client.isClosed).toBe(false);
    await vi.advanceTimersByTimeAsync(12_500);
    await connection.client.closed;
    await connection.ended;
    const kept = node.computations.get('silent')!;
    expect(kept.attached).toBe(false);
    expect(kept.computation).toBeDefined();
    // The job ends after the link is gone: its reply is saved to disk, whole.
    await eventually(() => expect(existsSync(path.join(savedDir('silent'), '1.reply'))).toBe(true));
    await kept.settled();
    const reply = dispy.JobReply.decode(readFileSync(path.join(savedDir('silent'), '1.reply')));
    expect(reply).toMatchObject({ computeId: 'silent', status: dispy.JobStatus.FINISHED });
    const meta = JSON.parse(readFileSync(path.join(savedDir('silent'), 'computation.json'), 'utf8')) as Record<string, number>;
    expect(meta).toMatchObject({ computeId: 'silent' });
    expect(meta.expires! - meta.lastHeard!).toBe(60_000);
    // No temporary file is left beside the replies.
    expect(readdirSync(savedDir('silent')).sort()).toEqual(['1.reply', 'computation.json']);
  });
});

describe('a computation set up again on a new connection', () => {
  it('waits while its setup goes on on a lost connection, and its directory is not removed under the new one', async () => {
    const first = await connect();
    // A setup that waits for a file its client never sends (the link is lost meanwhile).
    first.client.send({
      requestId: 1,
      setup: {
        computeId: 'again',
        name: 'again',
        kind: dispy.ComputationKind.PROGRAM,
        source: 'prog.sh',
        destPath: 'again',
        cpus: 1,
        cleanup: true,
        files: [{ name: 'data.bin', size: 10 }],
      },
    });
    await first.client.next('fileWant');
    const second = await connect();
    second.client.send({
      requestId: 1,
      setup: { computeId: 'again', name: 'again', kind: dispy.ComputationKind.PROGRAM, source: 'prog.sh' },
    });
    expect((await second.client.next('setupReply')).setupReply).toMatchObject({
      ok: false,
      retry: true,
      error: expect.stringContaining('computation again is still being set up on an earlier connection'),
    });
    // The lost connection ends: its setup is abandoned and its directory removed (cleanup), then
    // the client's retry sets the computation up, and its directory stays.
    await cut(first);
    await setUp(second, 'again');
    submit(second, 'again', 1);
    expect((await replyOf(second, 1)).jobReply!.status).toBe(dispy.JobStatus.FINISHED);
    expect(existsSync(path.join(node.destPathPrefix, 'again', 'prog.sh'))).toBe(true);
  });
});

describe('kept computations: Reattach', () => {
  it('refuses a computation it does not know, saying so', async () => {
    const connection = await connect();
    const reply = await reattach(connection, 'nowhere');
    expect(reply.ok).toBe(false);
    expect(reply.error).toContain('no computation nowhere on this node');
  });

  it('resends exactly the replies not acknowledged, and names the jobs still held', async () => {
    const first = await connect();
    await setUp(first, 'c1');
    for (const jobId of [1, 2, 3]) submit(first, 'c1', jobId);
    for (const jobId of [1, 2, 3]) await replyOf(first, jobId);
    first.client.send({ jobAck: { computeId: 'c1', jobIds: [1] } });
    // A job that runs on when the link is cut.
    writeFileSync(path.join(node.destPathPrefix, 'c1', 'prog.sh'), '#!/bin/sh\nsleep 0.5\nexit 0\n');
    submit(first, 'c1', 4);
    await eventually(() => expect(node.computations.get('c1')!.heldJobIds).toEqual([4]));
    await cut(first);

    const second = await connect();
    const reply = await reattach(second, 'c1');
    expect(reply).toMatchObject({ computeId: 'c1', ok: true, live: true, savedReplies: 2 });
    expect(reply.heldJobIds!.map(Number)).toEqual([4]);
    const resent = await Promise.all([replyOf(second, 2), replyOf(second, 3)]);
    expect(resent.map((frame) => frame.jobReply!.status)).toEqual([dispy.JobStatus.FINISHED, dispy.JobStatus.FINISHED]);
    // The held job's reply comes to the new connection when it ends.
    expect((await replyOf(second, 4)).jobReply!.status).toBe(dispy.JobStatus.FINISHED);
    expect(second.client.frames.filter((frame) => frame.kind === 'jobReply').map((frame) => Number(frame.jobReply!.jobId))).toEqual([
      2, 3, 4,
    ]);
    // The new connection holds the node now, and takes jobs.
    expect(node.owner).toBe(second.session);
    submit(second, 'c1', 5);
    await replyOf(second, 5);

    // Acknowledged (with no computation named: every one of the connection), they are not resent again.
    second.client.send({ jobAck: { jobIds: [2, 3, 4, 5] } });
    // A request answered after it: the ack was read before the link is cut.
    second.client.send({ requestId: 8, setCpus: { computeId: 'c1', cpus: 1 } });
    await second.client.next('setCpusReply');
    await cut(second);
    const third = await connect();
    expect(await reattach(third, 'c1')).toMatchObject({ ok: true, live: true, savedReplies: 0, heldJobIds: [] });
  });

  it('a computation known only from disk: Reattach resends its replies, Close deletes them', async () => {
    const first = await connect();
    await setUp(first, 'c2', 0.3);
    submit(first, 'c2', 7);
    await eventually(() => expect(node.computations.get('c2')!.heldJobIds).toEqual([7]));
    await cut(first);
    const kept = node.computations.get('c2')!;
    await eventually(() => expect(existsSync(path.join(savedDir('c2'), '7.reply'))).toBe(true));
    await kept.settled();
    // Another client wants the node alone: the idle computation closes, its saved replies stay.
    const other = await connect();
    await setUp(other, 'other', 0, true);
    await eventually(() => expect(kept.computation).toBeUndefined());
    expect(existsSync(path.join(savedDir('c2'), '7.reply'))).toBe(true);

    const back = await connect();
    expect(await reattach(back, 'c2')).toMatchObject({ ok: true, live: false, savedReplies: 1, heldJobIds: [] });
    expect((await replyOf(back, 7)).jobReply).toMatchObject({ computeId: 'c2', status: dispy.JobStatus.FINISHED });
    // Saved replies do not hold the node: the other client still has it.
    expect(node.owner).toBe(other.session);
    back.client.send({ requestId: 9, close: { computeId: 'c2' } });
    expect((await back.client.next('closeReply')).requestId).toBe(9);
    expect(existsSync(savedDir('c2'))).toBe(false);
    expect(node.computations.get('c2')).toBeUndefined();
  });

  it('keeps the node for a detached computation until its jobs end, then lets another client in', async () => {
    const first = await connect();
    await setUp(first, 'c3', 0.5);
    submit(first, 'c3', 1);
    await eventually(() => expect(node.computations.get('c3')!.heldJobIds).toEqual([1]));
    await cut(first);
    const other = await connect();
    other.client.send({ requestId: 1, setup: { computeId: 'x', name: 'x', kind: dispy.ComputationKind.PROGRAM, source: 'p' } });
    expect((await other.client.next('setupReply')).setupReply).toMatchObject({
      ok: false,
      error: expect.stringContaining('another client'),
    });
    await eventually(() => expect(node.owner).toBeUndefined());
    await setUp(other, 'x');
  });

  // Found by the chaos run: the client's link was cut before the SetupReply came, so the client,
  // back on a new connection, sets the computation up again; the node closes the old one for it.
  it('sets up again a computation a cut link left idle: the old one is closed first, and the new one keeps its directory and replies', async () => {
    const setup = {
      computeId: 'c7',
      name: 'double',
      kind: dispy.ComputationKind.FUNCTION,
      source: 'function double(n) { return n * 2; }',
      destPath: 'c7',
      cleanup: true,
      cpus: 1,
    };
    const first = await connect();
    first.client.send({ requestId: 1, setup });
    expect((await first.client.next('setupReply')).setupReply).toMatchObject({ ok: true });
    await cut(first);
    await eventually(() => expect(node.owner).toBeUndefined());
    const second = await connect();
    second.client.send({ requestId: 1, setup });
    expect((await second.client.next('setupReply')).setupReply).toMatchObject({ ok: true });
    for (const jobId of [1, 2]) second.client.send({ job: { computeId: 'c7', jobId } }, encodeArguments([jobId]));
    for (const jobId of [1, 2]) expect((await replyOf(second, jobId)).jobReply).toMatchObject({ status: dispy.JobStatus.FINISHED });
    expect(existsSync(path.join(node.destPathPrefix, 'c7'))).toBe(true);
  });

  it('deletes saved replies when the zombie interval passes without the client', async () => {
    const first = await connect();
    await setUp(first, 'c4');
    submit(first, 'c4', 1);
    await replyOf(first, 1);
    await cut(first);
    const kept = node.computations.get('c4')!;
    await eventually(() => expect(existsSync(path.join(savedDir('c4'), '1.reply'))).toBe(true));
    await kept.settled();
    await vi.advanceTimersByTimeAsync(59_000);
    expect(existsSync(savedDir('c4'))).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000);
    await eventually(() => expect(existsSync(savedDir('c4'))).toBe(false));
    expect(node.computations.get('c4')).toBeUndefined();
    const late = await connect();
    expect((await reattach(late, 'c4')).ok).toBe(false);
  });

  it('finds saved replies again after a restart (a new registry on the same prefix), and forgets expired ones', async () => {
    const first = await connect();
    await setUp(first, 'c5');
    submit(first, 'c5', 3);
    await replyOf(first, 3);
    await cut(first);
    await node.computations.get('c5')!.settled();
    await node.close();
    // An expired folder and a folder without metadata (a crash before it was written) are deleted at start.
    mkdirSync(path.join(node.destPathPrefix, SAVED_REPLIES_DIR, 'old'));
    writeFileSync(
      path.join(node.destPathPrefix, SAVED_REPLIES_DIR, 'old', 'computation.json'),
      JSON.stringify({ computeId: 'old', lastHeard: 0, expires: 1 }),
    );
    mkdirSync(path.join(node.destPathPrefix, SAVED_REPLIES_DIR, 'torn'));

    const logger = createLogger('restarted', 'silent');
    const restarted = new NodeComputations({ destPathPrefix: node.destPathPrefix, zombieIntervalMs: 60_000, logger, release: () => {} });
    await restarted.load();
    expect(readdirSync(path.join(node.destPathPrefix, SAVED_REPLIES_DIR))).toEqual(['c5']);
    expect(restarted.get('c5')!.hasReplies).toBe(true);
    expect(restarted.get('c5')!.computation).toBeUndefined();
    await restarted.close();
  });
});
