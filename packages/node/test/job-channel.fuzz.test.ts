/*
 * Property-based fuzzing of the job channel's reader (the worker's end): valid streams read in
 * reads of any sizes give the messages sent; random and corrupted bytes give messages or one
 * error, never a reader that stops taking bytes, and never a buffer larger than a frame may be
 * (see testing/fuzz.ts for the seed and the number of runs).
 */
import { describe, expect, it } from 'vitest';
import { FrameError } from '@dispy/protocol';
import { frameHeader } from '@dispy/protocol/codec';
import { JobChannelReader } from '../src/execution/job-channel.js';
import type { JobChannelMessage } from '../src/execution/worker-messages.js';
import { fc, fuzzRuns, hostileString, mutate, mutation } from '../../../testing/fuzz.js';

/** Bytes of the reader's scratch buffer (job-channel.ts): the smallest buffer it hands out. */
const SCRATCH_BYTES = 64 * 1024;

function frame(message: JobChannelMessage, args?: Uint8Array): Buffer {
  const bytes = Buffer.from(JSON.stringify(message));
  if (!args) return Buffer.concat([frameHeader(bytes.length), bytes]);
  return Buffer.concat([frameHeader(bytes.length, args.length), bytes, args]);
}

/**
 * Feeds `stream` as the socket does, each read at most `readSizes[i]` bytes (cycling) of the
 * buffer the reader hands out. Returns the messages with their arguments, and what it threw.
 */
function readAll(
  stream: Buffer,
  readSizes: readonly number[],
  maxFrameBytes?: number,
): { out: [JobChannelMessage, string][]; error?: unknown } {
  const out: [JobChannelMessage, string][] = [];
  const reader = new JobChannelReader((message, args) => out.push([message, Buffer.from(args).toString('hex')]), maxFrameBytes);
  let at = 0;
  try {
    for (let i = 0; at < stream.length; i++) {
      const target = reader.nextReadBuffer();
      // The reader always has room for the next read, and never more than a frame's worth.
      expect(target.length).toBeGreaterThan(0);
      expect(target.length).toBeLessThanOrEqual(Math.max(SCRATCH_BYTES, (maxFrameBytes ?? Infinity) + 8));
      const bytes = Math.min(target.length, Math.max(1, readSizes[i % readSizes.length] ?? 1), stream.length - at);
      stream.copy(target, 0, at, at + bytes);
      at += bytes;
      reader.received(bytes);
    }
  } catch (error) {
    return { out, error };
  }
  return { out };
}

const message: fc.Arbitrary<[JobChannelMessage, Uint8Array | undefined]> = fc.oneof(
  fc.tuple(
    fc.record({
      type: fc.constant('job' as const),
      jobId: fc.nat(),
      definitions: fc.option(fc.array(fc.record({ name: hostileString, source: hostileString }), { maxLength: 2 }), { nil: undefined }),
    }) as fc.Arbitrary<JobChannelMessage>,
    fc.uint8Array({ maxLength: 300 }),
  ),
  fc.tuple(fc.record({ type: fc.constant('drop' as const), jobId: fc.nat() }) as fc.Arbitrary<JobChannelMessage>, fc.constant(undefined)),
);

describe('JobChannelReader, fuzzed', () => {
  it('gives the messages sent, with their arguments, whatever the sizes of the reads (500 runs)', () => {
    fc.assert(
      fc.property(
        fc.array(message, { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 6 }),
        (sent, sizes) => {
          const stream = Buffer.concat(sent.map(([m, args]) => frame(m, args)));
          const { out, error } = readAll(stream, sizes);
          expect(error).toBeUndefined();
          // undefined fields do not survive JSON: compare as the worker sees them.
          expect(out).toEqual(sent.map(([m, args]) => [JSON.parse(JSON.stringify(m)), Buffer.from(args ?? []).toString('hex')]));
        },
      ),
      fuzzRuns(500),
    );
  });

  it('gives messages or one error for random and corrupted bytes, and always takes the next read (1,000 runs)', () => {
    const stream = fc.oneof(
      fc.uint8Array({ maxLength: 600 }).map((bytes) => Buffer.from(bytes)),
      fc
        .tuple(fc.array(message, { minLength: 1, maxLength: 4 }), fc.array(mutation, { minLength: 1, maxLength: 4 }))
        .map(([sent, mutations]) => mutate(Buffer.concat(sent.map(([m, args]) => frame(m, args))), mutations)),
    );
    fc.assert(
      fc.property(
        stream,
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 4 }),
        fc.constantFrom(1024, 70_000),
        (bytes, sizes, max) => {
          const { error } = readAll(bytes, sizes, max);
          // A frame over the limit is a FrameError; a message that is not JSON, JSON's SyntaxError.
          // readJobChannel destroys the worker's socket on either.
          if (error !== undefined) expect(error instanceof FrameError || error instanceof SyntaxError, String(error as Error)).toBe(true);
        },
      ),
      fuzzRuns(1000),
    );
  });
});
