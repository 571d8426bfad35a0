import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuthError, DispyError, ErrorCode, type Frame } from '@dispy/protocol';
import { NodeConnection, REPLY_TIMEOUT_MS, SETUP_TIMEOUT_MS } from './node-connection.js';
import { FakeNode } from './fake-node.test-helper.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});

afterEach(() => {
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
});

function connectionTo(node: FakeNode, secret = 'sesame') {
  const unrouted: Frame[] = [];
  const closed: Array<Error | undefined> = [];
  const connection = new NodeConnection({
    host: '127.0.0.1',
    port: 51348,
    secret,
    clientName: 'test',
    onFrame: (frame) => unrouted.push(frame),
    onClose: (error) => closed.push(error),
    connect: () => node.clientEnd.asSocket(),
  });
  return { connection, unrouted, closed };
}

async function opened(node = new FakeNode()) {
  const parts = connectionTo(node);
  await parts.connection.open();
  return { node, ...parts };
}

/** Expects `promise` to reject with a DispyError of `code` whose message matches `pattern`. */
async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, pattern: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(DispyError.isInstance(error), String(error)).toBe(true);
  expect((error as DispyError).code).toBe(code);
  expect((error as Error).message).toMatch(pattern);
}

describe('NodeConnection', () => {
  it('authenticates both ways, and refuses a node that cannot prove the secret', async () => {
    const { connection } = await opened();
    connection.destroy();
    const liar = new FakeNode('other');
    const error = await connectionTo(liar)
      .connection.open()
      .catch((reason: unknown) => reason);
    expect(AuthError.isInstance(error)).toBe(true);
  });

  it('matches concurrent setCpus answers by request id, whatever their order', async () => {
    const { node, connection } = await opened();
    const first = connection.setCpus('c', 1);
    const second = connection.setCpus('c', 3);
    const a = await node.next('setCpus');
    const b = await node.next('setCpus');
    expect(a.requestId).not.toBe(0);
    expect(b.requestId).not.toBe(a.requestId);
    // The node answers the second request first.
    node.send({ setCpusReply: { computeId: 'c', cpus: 3 }, requestId: b.requestId });
    node.send({ setCpusReply: { computeId: 'c', cpus: 1 }, requestId: a.requestId });
    expect((await second).cpus).toBe(3);
    expect((await first).cpus).toBe(1);
    connection.destroy();
  });

  it('rejects a request the node does not answer in time, and ignores its late answer', async () => {
    const { node, connection, unrouted } = await opened();
    const answer = connection.setCpus('c', 2);
    const asked = await node.next('setCpus');
    const checked = rejectsWith(answer, ErrorCode.NO_ANSWER, /node 127\.0\.0\.1:51348 did not answer setCpus in 60 s/);
    await vi.advanceTimersByTimeAsync(REPLY_TIMEOUT_MS);
    await checked;
    node.send({ setCpusReply: { computeId: 'c', cpus: 2 }, requestId: asked.requestId });
    await vi.waitFor(() => expect(unrouted.map((frame) => frame.kind)).toEqual(['setCpusReply']));
    connection.destroy();
  });

  it('rejects a request that the node refuses with an Error frame naming it', async () => {
    const { node, connection } = await opened();
    node.answerClose = false;
    const answer = connection.closeComputation('c', true);
    const asked = await node.next('close');
    node.send({ error: { code: ErrorCode.NO_COMPUTATION, message: 'no computation c here' }, requestId: asked.requestId });
    await rejectsWith(answer, ErrorCode.NO_COMPUTATION, /refused close: no computation c here/);
    connection.destroy();
  });

  it('rejects every pending request, naming the node, when the node vanishes mid-request', async () => {
    const { node, connection, closed } = await opened();
    node.answerClose = false;
    const cpus = connection.setCpus('c', 2);
    const close = connection.closeComputation('c', false);
    await node.next('close');
    node.vanish();
    await rejectsWith(cpus, ErrorCode.NO_ANSWER, /node 127\.0\.0\.1:51348 went away before answering setCpus/);
    await rejectsWith(close, ErrorCode.NO_ANSWER, /went away before answering close/);
    expect(closed).toHaveLength(1);
    // A request made after the close fails at once.
    await rejectsWith(connection.setCpus('c', 1), ErrorCode.NO_ANSWER, /went away/);
  });

  it('sends the files a setup asks for, then resolves with the setup reply of the same request', async () => {
    const { node, connection } = await opened();
    const sent: string[][] = [];
    const answer = connection.setup({ computeId: 'c', name: 'comp' }, async (want) => {
      sent.push(want.names);
    });
    const asked = await node.next('setup');
    node.send({ fileWant: { computeId: 'c', names: ['data.txt'] }, requestId: asked.requestId });
    await vi.waitFor(() => expect(sent).toEqual([['data.txt']]));
    node.send({ setupReply: { computeId: 'c', ok: true, cpus: 2 }, requestId: asked.requestId });
    expect(await answer).toMatchObject({ ok: true, cpus: 2 });
    connection.destroy();
  });

  it('fails a setup whose node vanishes while it waits for the files to arrive', async () => {
    const { node, connection } = await opened();
    let release!: () => void;
    const answer = connection.setup({ computeId: 'c', name: 'comp' }, () => new Promise<void>((resolve) => (release = resolve)));
    const asked = await node.next('setup');
    node.send({ fileWant: { computeId: 'c', names: ['big.bin'] }, requestId: asked.requestId });
    await vi.waitFor(() => expect(release).toBeDefined());
    node.vanish();
    await rejectsWith(answer, ErrorCode.NO_ANSWER, /went away before answering setup of comp/);
    release();
  });

  it('fails a setup whose files cannot be sent, with that reason', async () => {
    const { node, connection } = await opened();
    const answer = connection.setup({ computeId: 'c', name: 'comp' }, async () => {
      throw new DispyError(ErrorCode.FILE, 'data.txt: ENOENT');
    });
    const asked = await node.next('setup');
    node.send({ fileWant: { computeId: 'c', names: ['data.txt'] }, requestId: asked.requestId });
    await rejectsWith(answer, ErrorCode.FILE, /data\.txt: ENOENT/);
    connection.destroy();
  });

  it('times a setup out after 10 minutes without an answer', async () => {
    const { node, connection } = await opened();
    const answer = connection.setup({ computeId: 'c', name: 'comp' });
    await node.next('setup');
    const checked = rejectsWith(answer, ErrorCode.NO_ANSWER, /did not answer setup of comp in 600 s/);
    await vi.advanceTimersByTimeAsync(SETUP_TIMEOUT_MS);
    await checked;
    connection.destroy();
  });

  it('matches FileDone to its transfer by transfer id, and passes other frames on', async () => {
    const { node, connection, unrouted } = await opened();
    const one = connection.transfer('a.txt');
    const two = connection.transfer('b.txt');
    node.send({ fileDone: { transferId: two.transferId, ok: false, error: 'disk full' } });
    node.send({ fileDone: { transferId: one.transferId, ok: true } });
    node.send({ nodeCpus: { cpus: 1 } });
    await one.done;
    await rejectsWith(two.done, ErrorCode.FILE, /refused file b\.txt: disk full/);
    await vi.waitFor(() => expect(unrouted.map((frame) => frame.kind)).toEqual(['nodeCpus']));
    connection.destroy();
  });
});
