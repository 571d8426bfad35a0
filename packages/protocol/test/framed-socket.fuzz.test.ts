/*
 * Property-based fuzzing of FramedSocket over the in-memory socket pair: whatever a peer writes
 * (random bytes, corrupted valid frames, frames of every kind before and after the limits
 * switch), the receiving side delivers frames, or closes once with a FrameError, and nothing
 * throws out of it; no timer is left (see testing/fuzz.ts for the seed and the number of runs).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { dispy } from '../src/schema/schema.js';
import { DispyError } from '../src/errors/dispy-error.js';
import { FramedSocket, type Frame } from '../src/framing/framed-socket.js';
import { frameHeader } from '../src/framing/frame-header.js';
import { HANDSHAKE_LIMITS, SESSION_LIMITS } from '../src/framing/frame-limits.js';
import { socketPair } from '../../../testing/socket-pair.js';
import { fc, frameOf, fuzzRuns, mutate, mutation, splitAt } from '../../../testing/fuzz.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});

afterEach(() => {
  vi.useRealTimers();
});

/** Valid frames of any kind, each with an attachment when it may carry one. */
const frames = fc
  .array(fc.record({ frame: frameOf(), attachment: fc.uint8Array({ maxLength: 40 }) }), { minLength: 1, maxLength: 5 })
  .map((list) =>
    Buffer.concat(
      list.flatMap(({ frame, attachment }) => {
        const message = dispy.Frame.encode(frame).finish();
        return frame.job || frame.fileChunk
          ? [frameHeader(message.length, attachment.length), message, attachment]
          : [frameHeader(message.length), message];
      }),
    ),
  );

/** A well-formed handshake frame that switches the receiver to the session's limits. */
const AUTH = (() => {
  const message = dispy.Frame.encode({
    auth: { version: 3, nonce: new Uint8Array(16), mac: new Uint8Array(32), clientName: 'x' },
  }).finish();
  return Buffer.concat([frameHeader(message.length), message]);
})();

/**
 * Writes `pieces` from the peer's end, then hangs up; resolves with what the receiving side saw.
 * The receiver starts with HANDSHAKE_LIMITS and switches to SESSION_LIMITS on an Auth frame, as
 * a node does; `throwOn` makes its frame handler throw on that kind, as a buggy handler would.
 */
async function deliver(pieces: readonly Buffer[], throwOn?: string): Promise<{ frames: Frame[]; closes: (Error | undefined)[] }> {
  const { client, server } = socketPair();
  client.resume(); // reads the receiver's Error frame, as a peer would
  const seen: Frame[] = [];
  const closes: (Error | undefined)[] = [];
  const closed = new Promise<void>((resolve) => server.once('close', resolve));
  const channel = new FramedSocket(server.asSocket(), {
    limits: HANDSHAKE_LIMITS,
    onFrame: (frame) => {
      seen.push(frame);
      if (frame.kind === throwOn) throw new Error(`handler of ${frame.kind} failed`);
      if (frame.kind === 'auth') channel.setLimits(SESSION_LIMITS);
    },
    onClose: (error) => closes.push(error),
  });
  for (const piece of pieces) client.write(piece);
  client.end();
  await closed;
  // The receiver's grace timer (END_GRACE_MS) is gone once the socket closed.
  expect(vi.getTimerCount()).toBe(0);
  return { frames: seen, closes };
}

function expectSound({ frames, closes }: { frames: Frame[]; closes: (Error | undefined)[] }, throwOn?: string): void {
  expect(closes).toHaveLength(1);
  const error = closes[0];
  if (error !== undefined && !(throwOn !== undefined && error.message === `handler of ${throwOn} failed`)) {
    expect(DispyError.isInstance(error), String(error)).toBe(true);
  }
  // Before an Auth frame, only the handshake's kinds come through.
  const auth = frames.findIndex((frame) => frame.kind === 'auth');
  for (const frame of auth < 0 ? frames : frames.slice(0, auth)) expect(HANDSHAKE_LIMITS.kinds[frame.kind!]).toBeDefined();
}

describe('FramedSocket, fuzzed over an in-memory connection', () => {
  it('delivers frames or closes with a FrameError for random bytes (300 runs)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.uint8Array({ maxLength: 600 }),
        fc.array(fc.nat({ max: 700 }), { maxLength: 6 }),
        async (authFirst, bytes, points) => {
          const stream = authFirst ? Buffer.concat([AUTH, bytes]) : Buffer.from(bytes);
          expectSound(await deliver(splitAt(stream, points)));
        },
      ),
      fuzzRuns(300),
    );
  });

  it('delivers frames or closes with a FrameError for corrupted streams of every kind, before and after Auth (400 runs)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        frames,
        fc.array(mutation, { maxLength: 3 }),
        fc.array(fc.nat({ max: 700 }), { maxLength: 6 }),
        fc.option(fc.constantFrom('auth', 'job', 'fileChunk', 'error', 'setup'), { nil: undefined }),
        async (authFirst, bytes, mutations, points, throwOn) => {
          const stream = mutate(authFirst ? Buffer.concat([AUTH, bytes]) : bytes, mutations);
          expectSound(await deliver(splitAt(stream, points), throwOn), throwOn);
        },
      ),
      fuzzRuns(400),
    );
  });
});
