/*
 * Property-based fuzzing of FrameDecoder (see testing/fuzz.ts for the seed and the number of
 * runs). Whatever the bytes and however they are split, the decoder returns frames or throws a
 * FrameError, never another exception; it returns each valid frame exactly as it was sent; it
 * holds no more than one frame's header and the limits allow; and a frame it returns is one the
 * limits accept, whose message decodes as the kind it was judged by, or not at all.
 */
import { describe, expect, it } from 'vitest';
import { dispy } from '../src/schema/schema.js';
import { FrameError } from '../src/errors/frame-error.js';
import { ErrorCode } from '../src/errors/error-codes.js';
import { FrameDecoder, type DecodedFrame } from '../src/framing/frame-decoder.js';
import { ATTACHED_FRAME_HEADER_BYTES, frameHeader } from '../src/framing/frame-header.js';
import { FRAME_KIND_FIELDS, REPEATED_FIELDS, type FrameKind } from '../src/framing/frame-kinds.js';
import { HANDSHAKE_LIMITS, MAX_REPEATED_ENTRIES, SESSION_LIMITS, type FrameLimits } from '../src/framing/frame-limits.js';
import {
  FRAME_KINDS,
  fc,
  frameOf,
  fuzzRuns,
  kindOf,
  mutate,
  mutation,
  rawFrameMessage,
  splitAt,
  varint,
  wrongTypedFields,
} from '../../../testing/fuzz.js';

const STAGES: Record<string, FrameLimits> = { handshake: HANDSHAKE_LIMITS, session: SESSION_LIMITS };
const HANDSHAKE_KINDS = FRAME_KINDS.filter((kind) => HANDSHAKE_LIMITS.kinds[kind] !== undefined);

/** A frame sent: its message's bytes and its attachment, if it has one. */
interface Sent {
  kind: FrameKind;
  message: Buffer;
  attachment?: Buffer;
}

function wire(sent: readonly Sent[]): Buffer {
  return Buffer.concat(
    sent.flatMap(({ message, attachment }) =>
      attachment === undefined
        ? [frameHeader(message.length), message]
        : [frameHeader(message.length, attachment.length), message, attachment],
    ),
  );
}

/** Valid frames for a stage: kinds it accepts, attachments only on kinds that may carry them. */
function validFrames(limits: FrameLimits, kinds: readonly FrameKind[]): fc.Arbitrary<Sent[]> {
  const sent = fc
    .record({ frame: frameOf(kinds), attachment: fc.option(fc.uint8Array({ maxLength: 64 }), { freq: 2 }) })
    .map(({ frame, attachment }): Sent => {
      const kind = kindOf(frame);
      const message = Buffer.from(dispy.Frame.encode(frame as dispy.IFrame).finish());
      const carries = limits.kinds[kind]?.attachment === true && attachment !== null;
      return { kind, message, ...(carries ? { attachment: Buffer.from(attachment) } : {}) };
    });
  return fc.array(sent, { minLength: 1, maxLength: 6 });
}

/** Pushes the pieces one by one, reading frames one at a time; returns the frames, or the error. */
function decodeAll(decoder: FrameDecoder, pieces: readonly Buffer[]): { frames: DecodedFrame[]; error?: unknown } {
  const frames: DecodedFrame[] = [];
  try {
    for (const piece of pieces) {
      decoder.add(piece);
      for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) frames.push(frame);
      // What waits is at most one frame's header and what the limits allow.
      expect(decoder.pendingBytes).toBeLessThanOrEqual(ATTACHED_FRAME_HEADER_BYTES + decoder.currentLimits.maxFrameBytes);
    }
  } catch (error) {
    return { frames, error };
  }
  return { frames };
}

/** The checks every outcome of hostile bytes must pass. */
function expectSound(limits: FrameLimits, outcome: { frames: DecodedFrame[]; error?: unknown }): void {
  if (outcome.error !== undefined) {
    expect(outcome.error, String(outcome.error as Error)).toBeInstanceOf(FrameError);
    expect([ErrorCode.FRAME_TOO_LARGE, ErrorCode.FRAME_MALFORMED, ErrorCode.PROTOCOL]).toContain((outcome.error as FrameError).code);
  }
  for (const frame of outcome.frames) {
    const limit = limits.kinds[frame.kind];
    expect(limit, `${frame.kind} returned ${limits.stage}`).toBeDefined();
    const attached = frame.attachment?.reduce((total, piece) => total + piece.length, 0);
    expect(frame.message.length + (attached ?? 0)).toBeLessThanOrEqual(limit!.maxBytes);
    if (attached !== undefined) expect(limit!.attachment).toBe(true);
    // FramedSocket decodes the message next: it must decode as the kind it was judged by, or throw.
    let decoded: dispy.Frame | undefined;
    try {
      decoded = dispy.Frame.decode(frame.message);
    } catch (error) {
      expect(error).toBeInstanceOf(Error);
    }
    if (decoded) {
      expect(decoded.kind).toBe(frame.kind);
      for (const repeated of REPEATED_FIELDS[frame.kind] ?? []) {
        const [, name] = repeated.name.split('.') as [string, string];
        const entries = (decoded[frame.kind] as unknown as Record<string, unknown[]>)[name] ?? [];
        expect(entries.length).toBeLessThanOrEqual(limits.maxRepeated);
      }
    }
  }
}

describe('FrameDecoder, fuzzed', () => {
  it('decodes valid streams split at random points into the frames sent (200 runs per stage)', () => {
    for (const [stage, limits] of Object.entries(STAGES)) {
      const kinds = stage === 'handshake' ? HANDSHAKE_KINDS : FRAME_KINDS;
      fc.assert(
        fc.property(validFrames(limits, kinds), fc.array(fc.nat({ max: 2000 }), { maxLength: 12 }), (sent, points) => {
          const decoder = new FrameDecoder(limits);
          const { frames, error } = decodeAll(decoder, splitAt(wire(sent), points));
          expect(error).toBeUndefined();
          expect(frames.map((frame) => frame.kind)).toEqual(sent.map((frame) => frame.kind));
          frames.forEach((frame, i) => {
            expect(frame.message.equals(sent[i]!.message)).toBe(true);
            const attachment = frame.attachment === undefined ? undefined : Buffer.concat(frame.attachment);
            expect(attachment?.toString('hex')).toBe(sent[i]!.attachment?.toString('hex'));
          });
          expect(decoder.pendingBytes).toBe(0);
        }),
        fuzzRuns(200),
      );
    }
  });

  it('decodes a valid stream split at every single point into the frames sent (40 streams)', () => {
    fc.assert(
      fc.property(validFrames(SESSION_LIMITS, FRAME_KINDS), (sent) => {
        const bytes = wire(sent);
        const expected = sent.map((frame) => Buffer.concat([frame.message, frame.attachment ?? Buffer.alloc(0)]).toString('hex'));
        for (let split = 0; split <= bytes.length; split++) {
          const { frames, error } = decodeAll(new FrameDecoder(), [bytes.subarray(0, split), bytes.subarray(split)]);
          expect(error).toBeUndefined();
          expect(frames.map((frame) => Buffer.concat([frame.message, ...(frame.attachment ?? [])]).toString('hex'))).toEqual(expected);
        }
      }),
      fuzzRuns(40),
    );
  });

  it('returns frames or throws FrameError for random bytes (500 runs per stage)', () => {
    for (const limits of Object.values(STAGES)) {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 1500 }), fc.array(fc.nat({ max: 1500 }), { maxLength: 8 }), (bytes, points) => {
          expectSound(limits, decodeAll(new FrameDecoder(limits), splitAt(bytes, points)));
        }),
        fuzzRuns(500),
      );
    }
  });

  it('returns frames or throws FrameError for corrupted and truncated valid streams (500 runs per stage)', () => {
    for (const [stage, limits] of Object.entries(STAGES)) {
      // Frames of every kind, also those the stage refuses: a corrupting peer sends anything.
      const anyStage = stage === 'handshake' ? SESSION_LIMITS : limits;
      fc.assert(
        fc.property(
          validFrames(anyStage, FRAME_KINDS),
          fc.array(mutation, { minLength: 1, maxLength: 4 }),
          fc.array(fc.nat({ max: 2000 }), { maxLength: 8 }),
          (sent, mutations, points) => {
            expectSound(limits, decodeAll(new FrameDecoder(limits), splitAt(mutate(wire(sent), mutations), points)));
          },
        ),
        fuzzRuns(500),
      );
    }
  });

  it('returns frames or throws FrameError for frames of the right kind whose fields have the wrong types (500 runs)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ kind: fc.constantFrom(...FRAME_KINDS), body: wrongTypedFields, requestId: fc.nat() }), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.array(fc.nat({ max: 600 }), { maxLength: 6 }),
        (frames, points) => {
          const bytes = Buffer.concat(
            frames.map(({ kind, body, requestId }) => {
              const message = rawFrameMessage(FRAME_KIND_FIELDS[kind], body, requestId);
              return Buffer.concat([frameHeader(message.length), message]);
            }),
          );
          const outcome = decodeAll(new FrameDecoder(), splitAt(bytes, points));
          expectSound(SESSION_LIMITS, outcome);
        },
      ),
      fuzzRuns(500),
    );
  });

  it('judges every kind by its limits from the header and first tag alone, at and past each limit (2,000 runs)', () => {
    const stage = fc.constantFrom(...Object.values(STAGES));
    const size = (limits: FrameLimits, kind: FrameKind) => {
      const limit = limits.kinds[kind]?.maxBytes ?? 1024;
      return fc.oneof(
        fc.constantFrom(0, 1, 2, 3, limit - 1, limit, limit + 1, limits.maxFrameBytes, limits.maxFrameBytes + 1, 0x7fffffff),
        fc.nat({ max: 0x7fffffff }),
      );
    };
    const attachment = fc.oneof(fc.constant(-1), fc.constantFrom(0, 1, 1024, 4 * 1024 * 1024, 0xffffffff), fc.nat({ max: 0xffffffff }));
    const cases = stage.chain((limits) =>
      fc.constantFrom(...FRAME_KINDS).chain((kind) =>
        fc.record({
          limits: fc.constant(limits),
          kind: fc.constant(kind),
          messageBytes: size(limits, kind),
          attachmentBytes: attachment,
        }),
      ),
    );
    fc.assert(
      fc.property(cases, fc.boolean(), ({ limits, kind, messageBytes, attachmentBytes }, split) => {
        const field = FRAME_KIND_FIELDS[kind];
        const tag: number[] = [];
        varint(tag, field * 8 + 2);
        const header = attachmentBytes < 0 ? frameHeader(messageBytes) : frameHeader(messageBytes, attachmentBytes);
        const bytes = Buffer.concat([header, Buffer.from(tag)]).subarray(0, header.length + Math.min(tag.length, messageBytes));
        const decoder = new FrameDecoder(limits);
        const outcome = decodeAll(decoder, split ? splitAt(bytes, [1, header.length - 1, header.length + 1]) : [bytes]);
        expect(outcome.frames).toEqual([]);
        const expected = judge(limits, kind, messageBytes, attachmentBytes, tag.length);
        if (expected === undefined) {
          expect(outcome.error).toBeUndefined();
          // Nothing of the body was buffered beyond the tag.
          expect(decoder.pendingBytes).toBeLessThanOrEqual(tag.length);
        } else {
          expect(outcome.error, `expected ${expected}`).toBeInstanceOf(FrameError);
          expect((outcome.error as FrameError).code).toBe(expected);
        }
      }),
      fuzzRuns(2000),
    );
  });

  it('counts the entries of every repeated field, packed or not, and refuses one past the bound (300 runs)', () => {
    const repeated = Object.entries(REPEATED_FIELDS).flatMap(([kind, fields]) =>
      fields.map((field) => ({ kind: kind as FrameKind, ...field })),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...repeated),
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: -2, max: 2 }),
        fc.nat(),
        fc.array(fc.nat({ max: 300 }), { maxLength: 4 }),
        (entry, maxRepeated, delta, packedSplit, points) => {
          const count = Math.max(0, maxRepeated + delta);
          const body: number[] = [];
          if (entry.packed) {
            // Some entries packed in one occurrence of the field, the rest each in its own (proto3 reads both).
            const packed = count === 0 ? 0 : packedSplit % (count + 1);
            const values: number[] = [];
            for (let i = 0; i < packed; i++) varint(values, i * 1000);
            if (packed > 0) {
              varint(body, entry.field * 8 + 2);
              varint(body, values.length);
              body.push(...values);
            }
            for (let i = packed; i < count; i++) {
              varint(body, entry.field * 8);
              varint(body, i);
            }
          } else {
            for (let i = 0; i < count; i++) {
              varint(body, entry.field * 8 + 2);
              varint(body, 1);
              body.push(0x61);
            }
          }
          const message = rawFrameMessage(FRAME_KIND_FIELDS[entry.kind], Uint8Array.from(body));
          const limits: FrameLimits = { ...SESSION_LIMITS, maxRepeated };
          const { frames, error } = decodeAll(
            new FrameDecoder(limits),
            splitAt(Buffer.concat([frameHeader(message.length), message]), points),
          );
          if (count <= maxRepeated) {
            expect(error).toBeUndefined();
            expect(frames).toHaveLength(1);
          } else {
            expect(error).toBeInstanceOf(FrameError);
            expect((error as FrameError).code).toBe(ErrorCode.FRAME_TOO_LARGE);
            expect((error as FrameError).message).toContain(entry.name);
          }
        },
      ),
      fuzzRuns(300),
    );
  });

  it('takes a JobAck of exactly MAX_REPEATED_ENTRIES entries and refuses one more, packed or not', () => {
    for (const packed of [true, false]) {
      for (const count of [MAX_REPEATED_ENTRIES, MAX_REPEATED_ENTRIES + 1]) {
        const body: number[] = [];
        if (packed) {
          varint(body, 1 * 8 + 2);
          varint(body, count);
          for (let i = 0; i < count; i++) body.push(0);
        } else {
          for (let i = 0; i < count; i++) body.push(1 * 8, 0);
        }
        const message = rawFrameMessage(FRAME_KIND_FIELDS.jobAck, Uint8Array.from(body));
        const outcome = decodeAll(new FrameDecoder(), [Buffer.concat([frameHeader(message.length), message])]);
        if (count === MAX_REPEATED_ENTRIES) {
          expect(outcome.error).toBeUndefined();
          expect(dispy.Frame.decode(outcome.frames[0]!.message).jobAck!.jobIds).toHaveLength(count);
        } else if (message.length <= SESSION_LIMITS.kinds.jobAck!.maxBytes) {
          expect((outcome.error as FrameError).code).toBe(ErrorCode.FRAME_TOO_LARGE);
        }
      }
    }
  });
});

/** What the decoder must say of a frame's header and first tag: undefined (wait for more) or the code it throws. */
function judge(
  limits: FrameLimits,
  kind: FrameKind,
  messageBytes: number,
  attachmentBytes: number,
  tagBytes: number,
): ErrorCode | undefined {
  const size = messageBytes + Math.max(attachmentBytes, 0);
  if (size > limits.maxFrameBytes) return ErrorCode.FRAME_TOO_LARGE;
  if (messageBytes === 0) return ErrorCode.FRAME_MALFORMED;
  const anyAttachment = Object.values(limits.kinds).some((limit) => limit.attachment === true);
  if (attachmentBytes >= 0 && !anyAttachment) return ErrorCode.PROTOCOL;
  if (messageBytes < tagBytes) return ErrorCode.FRAME_MALFORMED;
  const limit = limits.kinds[kind];
  if (limit === undefined) return ErrorCode.PROTOCOL;
  if (size > limit.maxBytes) return ErrorCode.FRAME_TOO_LARGE;
  if (attachmentBytes >= 0 && limit.attachment !== true) return ErrorCode.PROTOCOL;
  // A message of the tag alone is complete, and lacks its kind's length.
  if (messageBytes === tagBytes) return ErrorCode.FRAME_MALFORMED;
  return undefined;
}
