import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DispyError, ErrorCode, type Frame } from '@dispy/protocol';
import { NodeConnection } from './node-connection.js';
import { FakeNode } from './fake-node.test-helper.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});

afterEach(() => {
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
});

/** An authenticated connection to a FakeNode whose AuthResult carries `heartbeatInterval`. */
async function openTo(heartbeatInterval: number) {
  const node = new FakeNode('sesame', { heartbeatInterval, zombieInterval: 3600 });
  const closed: Array<Error | undefined> = [];
  const keepAlive = vi.spyOn(node.clientEnd, 'setKeepAlive');
  const connection = new NodeConnection({
    host: '127.0.0.1',
    port: 51348,
    secret: 'sesame',
    clientName: 'test',
    onFrame: () => undefined,
    onClose: (error) => closed.push(error),
    connect: () => node.clientEnd.asSocket(),
  });
  await connection.open();
  return { node, connection, closed, keepAlive };
}

/** Lets in-memory sockets deliver what was sent (vi.waitFor would move the fake clock). */
async function ioTurns(turns = 5): Promise<void> {
  for (let turn = 0; turn < turns; turn++) await new Promise((resolve) => setImmediate(resolve));
}

const pulses = (node: FakeNode): Frame[] => node.frames.filter((frame) => frame.kind === 'pulse');

describe('NodeConnection keeping its link alive', () => {
  it('takes the intervals from the AuthResult and turns TCP keepalive on', async () => {
    const { connection, keepAlive } = await openTo(7);
    expect(connection.heartbeatSeconds).toBe(7);
    expect(connection.zombieSeconds).toBe(3600);
    expect(keepAlive).toHaveBeenCalledWith(true, expect.any(Number));
    connection.destroy();
  });

  it('sends a pulse only when it has sent nothing for a heartbeat interval', async () => {
    const { node, connection } = await openTo(5);
    // Busy: a frame every 2 s, so no pulse is needed.
    for (let second = 0; second < 12; second += 2) {
      connection.send({ cancel: { computeId: 'c', jobId: second } });
      await vi.advanceTimersByTimeAsync(2000);
      node.send({ pulse: {} });
    }
    await ioTurns();
    expect(pulses(node)).toHaveLength(0);
    // Idle: one pulse per interval.
    await vi.advanceTimersByTimeAsync(5000);
    await ioTurns();
    expect(pulses(node)).toHaveLength(1);
    node.send({ pulse: {} });
    await vi.advanceTimersByTimeAsync(5000);
    await ioTurns();
    expect(pulses(node)).toHaveLength(2);
    expect(connection.isClosed).toBe(false);
    connection.destroy();
  });

  it('presumes the link dead when the node is silent for four intervals, and says so when it closes', async () => {
    const { node, connection, closed } = await openTo(5);
    // A node that pulses keeps the link.
    for (let second = 0; second < 60; second += 4) {
      node.send({ pulse: {} });
      await vi.advanceTimersByTimeAsync(4000);
    }
    expect(closed).toEqual([]);
    await vi.advanceTimersByTimeAsync(20_000);
    await ioTurns();
    expect(closed).toHaveLength(1);
    expect(DispyError.isInstance(closed[0])).toBe(true);
    expect((closed[0] as DispyError).code).toBe(ErrorCode.NO_ANSWER);
    expect(closed[0]!.message).toMatch(/node 127\.0\.0\.1:51348 sent nothing for 2\d s \(4 heartbeats\); link presumed dead/);
    expect(connection.isClosed).toBe(true);
  });

  it('uses a 10 s heartbeat when the node does not say (an older node)', async () => {
    const { node, connection, closed } = await openTo(0);
    expect(connection.heartbeatSeconds).toBe(0);
    await vi.advanceTimersByTimeAsync(9_999);
    expect(pulses(node)).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    await ioTurns();
    expect(pulses(node)).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(29_999);
    await ioTurns();
    expect(closed).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await ioTurns();
    expect(closed).toHaveLength(1);
    expect(closed[0]!.message).toMatch(/sent nothing for 40 s/);
  });

  it('acknowledges replies in one JobAck per computation, naming it', async () => {
    const { node, connection } = await openTo(3600);
    connection.ack('c1', 1);
    connection.ack('c2', 7);
    connection.ack('c1', 2);
    const acks = [await node.next('jobAck'), await node.next('jobAck')].map((frame) => frame.jobAck!);
    expect(acks.map((ack) => [ack.computeId, ack.jobIds!.map(Number)])).toEqual([
      ['c1', [1, 2]],
      ['c2', [7]],
    ]);
    connection.destroy();
  });
});
