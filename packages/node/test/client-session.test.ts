import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode, PROTOCOL_VERSION, clientProof, dispy, encodeArguments, newNonce, sendFileChunks } from '@dispy/protocol';
import { socketPair, type MemorySocket } from '../../../testing/socket-pair.js';
import { ClientSession } from '../src/session/client-session.js';
import { SessionClient, fakeNode } from './session-client.js';

type Node = ReturnType<typeof fakeNode>;

let node: Node;
let sockets: { client: MemorySocket; server: MemorySocket };
let client: SessionClient;
let session: ClientSession;
let ended: Promise<void>;

/** Starts a session on an in-memory connection, with the client's end ready to talk. */
function connect(overrides: Partial<Node> = {}): void {
  node = fakeNode(overrides);
  sockets = socketPair();
  client = new SessionClient(sockets.client);
  let resolveEnded!: () => void;
  ended = new Promise((resolve) => (resolveEnded = resolve));
  session = new ClientSession(sockets.server.asSocket(), node, () => resolveEnded());
}

/** A program computation whose program is already in its directory (no files to send). */
function programSetup(computeId: string, extra: dispy.ISetup = {}): dispy.ISetup {
  const dir = path.join(node.destPathPrefix, computeId);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'prog.sh'), '#!/bin/sh\nexit 0\n');
  return { computeId, name: computeId, kind: dispy.ComputationKind.PROGRAM, source: 'prog.sh', destPath: computeId, cpus: 1, ...extra };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});

afterEach(async () => {
  sockets.client.destroy();
  await ended;
  // Computations detached when the link went are kept by the node until it stops.
  await node.close();
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
  node.dispose();
});

describe('ClientSession: the handshake', () => {
  it('authenticates a client that proves the secret, and proves it back', async () => {
    connect();
    const hello = await client.next('hello');
    expect(hello.hello).toMatchObject({ version: PROTOCOL_VERSION });
    // Nothing of the node before the client proved the secret: its name comes in AuthResult.
    expect(JSON.stringify(hello.hello)).not.toContain('test-node');
    const { result, proofOk } = await client.authenticate('sesame');
    expect(result.authResult!.ok).toBe(true);
    expect(result.authResult!.nodeName).toBe('test-node');
    expect(proofOk).toBe(true);
    expect(node.calls).toContain('authenticated');
  });

  it('disconnects a client that does not authenticate within 10 s', async () => {
    connect();
    await client.next('hello');
    await vi.advanceTimersByTimeAsync(9_999);
    expect(client.isClosed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await client.closed;
    await ended;
    expect(node.calls).not.toContain('authenticated');
  });

  it('refuses a client whose secret differs, saying why', async () => {
    connect();
    const { result } = await client.authenticate('not the secret');
    expect(result.authResult).toMatchObject({ ok: false, reason: "the client's secret does not match the node's" });
    expect(result.authResult!.nodeName).toBe('');
    await client.closed;
    await ended;
    expect(node.calls).not.toContain('authenticated');
  });

  it('hears nothing more from a refused client: a second Auth right behind the wrong one is not judged', async () => {
    connect();
    const hello = await client.next('hello');
    const nonce = newNonce();
    const auth = (secret: string) => ({
      auth: { version: PROTOCOL_VERSION, nonce, mac: clientProof(secret, hello.hello!.nonce!, nonce), clientName: 'guesser' },
    });
    // Both guesses leave in one write: the node reads them in one chunk.
    client.send(auth('guess one'));
    client.send(auth('sesame'));
    await client.closed;
    await ended;
    expect(client.frames.filter((frame) => frame.kind === 'authResult').map((frame) => frame.authResult!.ok)).toEqual([false]);
    expect(node.calls).not.toContain('authenticated');
  });

  it('refuses a client of another protocol version, naming both', async () => {
    connect();
    const { result } = await client.authenticate('sesame', PROTOCOL_VERSION + 1);
    expect(result.authResult).toMatchObject({
      ok: false,
      reason: `node speaks protocol ${PROTOCOL_VERSION}, client ${PROTOCOL_VERSION + 1}`,
    });
    await client.closed;
  });

  it('hangs up on a frame other than Auth before authentication, and runs nothing', async () => {
    connect();
    await client.next('hello');
    client.send({ requestId: 1, setup: programSetup('early') });
    const error = await client.next('error');
    expect(error.error).toMatchObject({ code: ErrorCode.PROTOCOL, message: 'setup frames are not accepted before authentication' });
    await client.closed;
    // The node lingers a second for its error to be read before it resets the connection.
    await vi.advanceTimersByTimeAsync(1000);
    await ended;
    expect(node.calls).not.toContain('admit');
  });

  it('refuses a frame larger than the handshake allows before reading its body', async () => {
    connect();
    await client.next('hello');
    // The header of a 1 MiB Auth frame: refused from its length alone.
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1024 * 1024);
    sockets.client.write(header);
    const error = await client.next('error');
    expect(error.error!.code).toBe(ErrorCode.FRAME_TOO_LARGE);
    await client.closed;
    await vi.advanceTimersByTimeAsync(1000);
    await ended;
    expect(node.calls).not.toContain('authenticated');
  });
});

describe('ClientSession: requests and replies', () => {
  it('answers a frame unexpected from a client with an Error carrying its request id, and stays open', async () => {
    connect();
    await client.authenticate('sesame');
    client.send({ requestId: 7, setupReply: { computeId: 'x', ok: true } });
    const error = await client.next('error');
    expect(error.requestId).toBe(7);
    expect(error.error).toMatchObject({ code: ErrorCode.PROTOCOL, message: 'unexpected setupReply frame' });
    client.send({ requestId: 8, setCpus: { computeId: 'none', cpus: 1 } });
    expect((await client.next('setCpusReply')).requestId).toBe(8);
    expect(client.isClosed).toBe(false);
  });

  it('answers concurrent SetCpus and Close requests each under its own request id', async () => {
    connect();
    await client.authenticate('sesame');
    client.send({ requestId: 1, setup: programSetup('p1', { cpus: 2 }) });
    const setupReply = await client.next('setupReply');
    expect(setupReply.requestId).toBe(1);
    expect(setupReply.setupReply).toMatchObject({ computeId: 'p1', ok: true, cpus: 2 });

    client.send({ requestId: 11, setCpus: { computeId: 'p1', cpus: 1 } });
    client.send({ requestId: 12, setCpus: { computeId: 'p1', cpus: 2 } });
    client.send({ requestId: 13, setCpus: { computeId: 'elsewhere', cpus: 2 } });
    client.send({ requestId: 14, close: { computeId: 'p1' } });
    const replies = await Promise.all([11, 12, 13].map((id) => client.next('setCpusReply', (frame) => frame.requestId === id)));
    expect(replies.map((frame) => frame.setCpusReply)).toEqual([
      expect.objectContaining({ computeId: 'p1', cpus: 1, error: '' }),
      expect.objectContaining({ computeId: 'p1', cpus: 2, error: '' }),
      expect.objectContaining({ computeId: 'elsewhere', cpus: 0, error: 'no computation elsewhere here' }),
    ]);
    const closeReply = await client.next('closeReply');
    expect(closeReply.requestId).toBe(14);
    expect(closeReply.closeReply!.computeId).toBe('p1');
    expect(node.calls.at(-1)).toBe('release');
  });

  it('answers a later request first when an earlier one waits for files: replies name their requests', async () => {
    connect();
    await client.authenticate('sesame');
    client.send({ requestId: 1, setup: programSetup('ready') });
    expect((await client.next('setupReply')).requestId).toBe(1);

    // A second computation waits for a file the node lacks...
    const data = path.join(node.destPathPrefix, 'client-side-data.txt');
    writeFileSync(data, 'payload');
    client.send({ requestId: 2, setup: { ...programSetup('waiting'), files: [{ name: 'data.txt', size: 7 }] } });
    const want = await client.next('fileWant');
    expect(want.requestId).toBe(2);
    expect(want.fileWant).toMatchObject({ computeId: 'waiting', names: ['data.txt'] });

    // ...while a request about the first is answered at once.
    client.send({ requestId: 3, setCpus: { computeId: 'ready', cpus: 1 } });
    expect((await client.next('setCpusReply')).requestId).toBe(3);
    expect(client.frames.some((frame) => frame.kind === 'setupReply' && frame.requestId === 2)).toBe(false);

    await sendFileChunks(client.channel, { transferId: 1, file: data, name: 'data.txt', computeId: 'waiting' });
    expect((await client.next('fileDone')).fileDone).toMatchObject({ ok: true });
    const second = await client.next('setupReply');
    expect(second.requestId).toBe(2);
    expect(second.setupReply).toMatchObject({ computeId: 'waiting', ok: true });
  });

  it('answers "not now, retry" to a Setup the node does not admit now, under the request id, and runs nothing', async () => {
    connect({ admit: () => 'another computation runs here alone' });
    await client.authenticate('sesame');
    client.send({ requestId: 5, setup: programSetup('busy') });
    const reply = await client.next('setupReply');
    expect(reply.requestId).toBe(5);
    expect(reply.setupReply).toMatchObject({
      ok: false,
      retry: true,
      error: 'not now: another computation runs here alone; the client tries again later',
    });
    expect(session.status()).toEqual({ computations: 0, running: 0 });
  });

  it('refuses a job of a computation it does not have, naming the job', async () => {
    connect();
    await client.authenticate('sesame');
    client.send({ job: { computeId: 'nothing', jobId: 9 } }, encodeArguments([]));
    const error = await client.next('error');
    expect(error.error).toMatchObject({ code: ErrorCode.NO_COMPUTATION, message: 'no computation nothing here' });
    expect(Number(error.error!.jobId)).toBe(9);
  });
});

describe('ClientSession: a client that vanishes', () => {
  it('mid-setup, while files are awaited: the computation is removed and the node released', async () => {
    connect();
    await client.authenticate('sesame');
    client.send({ requestId: 1, setup: { ...programSetup('abandoned', { cleanup: true }), files: [{ name: 'big.bin', size: 1000 }] } });
    await client.next('fileWant');
    const dir = path.join(node.destPathPrefix, 'abandoned');
    expect(existsSync(dir)).toBe(true);
    sockets.client.destroy();
    await ended;
    expect(existsSync(dir)).toBe(false);
    expect(node.calls.filter((call) => call === 'release').length).toBeGreaterThan(0);
    expect(session.status()).toEqual({ computations: 0, running: 0 });
  });

  it('mid-job: its running job is killed with its worker, and a waiting dispySendFile fails without an unhandled rejection', async () => {
    connect();
    await client.authenticate('sesame');
    // A job that sends a file the client never acknowledges (the client does not answer
    // FileDone), then waits: the transfer is pending when the client goes away.
    const source = `async function sender() {
      require('node:fs').writeFileSync('out.txt', 'x'.repeat(100));
      dispySendFile('out.txt').catch(() => {});
      await dispyProvisionalResult('sending');
      return new Promise(() => {});
    }`;
    client.send({
      requestId: 1,
      setup: { computeId: 'f1', name: 'sender', kind: dispy.ComputationKind.FUNCTION, source, cpus: 1, destPath: 'f1' },
    });
    expect((await client.next('setupReply')).setupReply).toMatchObject({ ok: true });
    client.send({ job: { computeId: 'f1', jobId: 1 } }, encodeArguments([]));
    await client.next('fileChunk');
    await client.next('jobReply', (frame) => frame.jobReply!.status === dispy.JobStatus.PROVISIONAL);
    expect(session.status().running).toBe(1);
    sockets.client.destroy();
    await ended;
    expect(session.status()).toEqual({ computations: 0, running: 0 });
  });
});
