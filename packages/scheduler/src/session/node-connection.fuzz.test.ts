/*
 * Property-based fuzzing of NodeConnection against a hostile node: random frames of every kind,
 * before the handshake and after it, with request ids that name the client's requests or not.
 * Opening rejects with a DispyError or succeeds only after the node proved the secret; every
 * request ends, answered or with a DispyError; nothing throws out of the connection, no promise
 * is left rejected without a handler, and no timer is left (see testing/fuzz.ts for the seed and
 * the number of runs).
 */
import type { Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { DispyError, FramedSocket, type FrameInit } from '@dispy/protocol';
import { socketPair } from '../../../../testing/socket-pair.js';
import { fakeTimersRecordingRejections, fc, frameOf, fuzzRuns, requestId } from '../../../../testing/fuzz.js';
import { NodeConnection } from './node-connection.js';
import { FakeNode } from './fake-node.test-helper.js';

const rejections = fakeTimersRecordingRejections();

const sentFrame = fc.record({
  frame: frameOf(undefined, fc.oneof(requestId, fc.integer({ min: 1, max: 6 }))),
  attachment: fc.uint8Array({ maxLength: 16 }),
});

function send(channel: FramedSocket, { frame, attachment }: { frame: FrameInit; attachment: Uint8Array }): void {
  channel.send(frame, frame.job || frame.fileChunk ? attachment : undefined);
}

function connection(connect: () => Socket) {
  const closes: (Error | undefined)[] = [];
  const unrouted: unknown[] = [];
  const conn = new NodeConnection({
    host: '127.0.0.1',
    port: 51348,
    secret: 'sesame',
    clientName: 'fuzz',
    onFrame: (frame) => unrouted.push(frame),
    onClose: (error) => closes.push(error),
    connect,
  });
  return { conn, closes, unrouted };
}

/** How a promise ended: 'resolved', or the error it rejected with, which must be a DispyError. */
async function settled(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'resolved',
    (error: unknown) => {
      expect(DispyError.isInstance(error), String(error as Error)).toBe(true);
      return 'rejected';
    },
  );
}

describe('NodeConnection against a hostile node, fuzzed', () => {
  it('never opens for a node that does not prove the secret, whatever it sends (200 runs)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(sentFrame, { minLength: 1, maxLength: 5 }), async (frames) => {
        const { client, server } = socketPair();
        const node = new FramedSocket(server.asSocket(), { onFrame: () => undefined, onClose: () => undefined });
        const { conn, closes } = connection(() => client.asSocket());
        const opening = settled(conn.open());
        for (const sent of frames) send(node, sent);
        node.end();
        expect(await opening).toBe('rejected');
        conn.destroy();
        await vi.advanceTimersByTimeAsync(1000);
        expect(closes).toEqual([]);
        expect(vi.getTimerCount()).toBe(0);
        expect(rejections).toEqual([]);
      }),
      fuzzRuns(200),
    );
  });

  it('ends every request, answered or refused, whatever an authenticated node answers (200 runs)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(sentFrame, { minLength: 1, maxLength: 10 }), fc.boolean(), async (frames, vanish) => {
        const node = new FakeNode();
        node.answerClose = false;
        const { conn, closes } = connection(() => node.clientEnd.asSocket());
        await conn.open();
        const transfer = conn.transfer('data.txt');
        // Request ids 1 to 4, then the transfer's id 1 (its own counter): the fuzzed frames name them often.
        const requests = [
          settled(conn.setup({ computeId: 'c1', name: 'c1' }, async () => undefined)),
          settled(conn.setCpus('c1', 1)),
          settled(conn.setCpus('c1', 2)),
          settled(conn.closeComputation('c1', false)),
          settled(transfer.done),
        ];
        for (const sent of frames) send(node.channel, sent);
        if (vanish) node.vanish();
        else conn.destroy();
        const outcomes = await Promise.all(requests);
        expect(outcomes).toHaveLength(5);
        if (vanish) expect(closes).toHaveLength(1);
        await vi.advanceTimersByTimeAsync(1000);
        node.vanish();
        await vi.advanceTimersByTimeAsync(0);
        expect(vi.getTimerCount()).toBe(0);
        expect(rejections).toEqual([]);
      }),
      fuzzRuns(200),
    );
  });
});
