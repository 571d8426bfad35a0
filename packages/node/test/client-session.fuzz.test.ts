/*
 * Property-based fuzzing of the node's ClientSession over an in-memory connection: random frames
 * of every kind, in any order, with hostile field values, before and after authentication. The
 * session answers each frame it does not expect with an Error frame, or closes the connection;
 * nothing throws out of it, no promise is left rejected without a handler, nothing is written
 * outside the prefix, and no timer is left once the session has ended (see testing/fuzz.ts for
 * the seed and the number of runs).
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { dispy } from '@dispy/protocol';
import { socketPair } from '../../../testing/socket-pair.js';
import { FRAME_KINDS, fakeTimersRecordingRejections, fc, frameOf, fuzzRuns, kindOf, type FuzzFrameKind } from '../../../testing/fuzz.js';
import { ClientSession } from '../src/session/client-session.js';
import { SessionClient, fakeNode } from './session-client.js';

/** The kinds a node never expects from a client once it has authenticated (its handler table's UNEXPECTED). */
const UNEXPECTED_AFTER_AUTH: readonly FuzzFrameKind[] = [
  'hello',
  'auth',
  'authResult',
  'setupReply',
  'jobReply',
  'closeReply',
  'setCpusReply',
  'nodeCpus',
  'fileWant',
  'reattachReply',
  'nodeStatus',
  'jobEvent',
  'allocate',
  'allocateReply',
  'deallocate',
  'deallocateReply',
  'reclaimReply',
];
/** A request id no fuzzed frame has: the Error frame answering it marks the end of the answers. */
const SENTINEL = 0xfffffff0;

/*
 * Every session's prefix is a directory of its own in `base`. A setup under way when its session
 * ends finishes on its own a little later (it closes its computation), so prefixes are removed
 * with the base, at the end.
 */
const base = mkdtempSync(path.join(os.tmpdir(), 'dispy-fuzz-session-'));
afterAll(() => rmSync(base, { recursive: true, force: true, maxRetries: 5 }));

const rejections = fakeTimersRecordingRejections();

/** A frame a client sends, with an attachment for the kinds that carry one (sometimes without, as a liar would). */
const sentFrame = fc
  .record({ frame: frameOf(FRAME_KINDS), attachment: fc.option(fc.uint8Array({ maxLength: 32 }), { freq: 5, nil: undefined }) })
  .map(({ frame, attachment }) => {
    // Setups are of programs: a function's setup starts worker processes, too slow for a fuzz case.
    if (frame.setup) frame.setup.kind = dispy.ComputationKind.PROGRAM;
    return { frame, attachment: frame.job || frame.fileChunk ? attachment : undefined };
  });

/** Starts a session on an in-memory connection; the prefix has a program in `c1/` and `c2/`. */
function connect() {
  const node = fakeNode({ destPathPrefix: mkdtempSync(path.join(base, 'prefix-')) });
  for (const dir of ['c1', 'c2']) {
    mkdirSync(path.join(node.destPathPrefix, dir));
    writeFileSync(path.join(node.destPathPrefix, dir, 'prog.sh'), '#!/bin/sh\nexit 0\n');
  }
  const sockets = socketPair();
  const client = new SessionClient(sockets.client);
  let resolveEnded!: () => void;
  const ended = new Promise<void>((resolve) => (resolveEnded = resolve));
  new ClientSession(sockets.server.asSocket(), node, () => resolveEnded());
  return { node, sockets, client, ended };
}

/** Hangs up, waits for the session to end, and checks that nothing is left behind. */
async function finish({ node, sockets, ended }: ReturnType<typeof connect>): Promise<void> {
  sockets.client.destroy();
  await ended;
  // The node's grace period for a peer to hang up after its Error frame, if it sent one.
  await vi.advanceTimersByTimeAsync(1000);
  // Computations detached when the link went are kept by the node until it stops.
  await node.close();
  expect(vi.getTimerCount()).toBe(0);
  expect(node.calls.at(-1)).toBe('release');
  // Nothing was written beside the prefix.
  expect(readdirSync(base).filter((name) => !name.startsWith('prefix-'))).toEqual([]);
  node.dispose();
  expect(rejections).toEqual([]);
}

describe('ClientSession, fuzzed', () => {
  it('closes the connection on whatever an unauthenticated client sends, and authenticates no one (150 runs)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(sentFrame, { minLength: 1, maxLength: 5 }), async (frames) => {
        const session = connect();
        await session.client.next('hello');
        for (const { frame, attachment } of frames) session.client.send(frame, attachment);
        // Before authentication the first frame decides: the node hangs up, whatever it was.
        await session.client.closed;
        expect(session.node.calls).not.toContain('authenticated');
        const kinds = session.client.frames.map((frame) => frame.kind);
        expect(kinds.filter((kind) => kind !== 'hello' && kind !== 'error' && kind !== 'authResult')).toEqual([]);
        expect(session.client.frames.filter((frame) => frame.authResult?.ok === true)).toEqual([]);
        await finish(session);
      }),
      fuzzRuns(150),
    );
  });

  it('answers every frame it does not expect after authentication with an Error, or closes (120 runs)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(sentFrame, { minLength: 1, maxLength: 12 }), async (frames) => {
        // The sentinel's request id marks the end of the answers: no fuzzed frame may take it.
        fc.pre(frames.every(({ frame }) => frame.requestId !== SENTINEL));
        const session = connect();
        const { client } = session;
        const { result } = await client.authenticate('sesame');
        expect(result.authResult!.ok).toBe(true);
        for (const { frame, attachment } of frames) client.send(frame, attachment);
        client.send({ requestId: SENTINEL, hello: {} });
        const answered = await client
          .next('error', (frame) => frame.requestId === SENTINEL)
          .then(
            () => true,
            () => false, // the node closed the connection first
          );
        if (answered) {
          const unexpected = frames.map(({ frame }) => kindOf(frame)).filter((kind) => UNEXPECTED_AFTER_AUTH.includes(kind));
          const refusals = client.frames.filter(
            (frame) => (frame.error?.message ?? '').startsWith('unexpected ') && frame.requestId !== SENTINEL,
          );
          expect(refusals.map((frame) => frame.error!.message)).toEqual(unexpected.map((kind) => `unexpected ${kind} frame`));
        }
        await finish(session);
      }),
      fuzzRuns(120),
    );
  });
});
