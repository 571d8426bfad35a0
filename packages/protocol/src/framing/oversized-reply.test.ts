import { describe, expect, it } from 'vitest';
import { dispy } from '../schema/schema.js';
import { ErrorCode } from '../errors/error-codes.js';
import { FrameDecoder, type DecodedFrame } from './frame-decoder.js';
import { frameHeader } from './frame-header.js';
import { CLIENT_SESSION_LIMITS, SESSION_LIMITS, type FrameLimits } from './frame-limits.js';

const KiB = 1024;
const encode = (frame: dispy.IFrame): Buffer => Buffer.from(dispy.Frame.encode(frame).finish());
const framed = (body: Buffer): Buffer => Buffer.concat([frameHeader(body.length), body]);

/** CLIENT_SESSION_LIMITS with a JobReply limit of 64 KiB (and frames of at most 64 KiB). */
const SMALL: FrameLimits = {
  ...CLIENT_SESSION_LIMITS,
  maxFrameBytes: 64 * KiB,
  kinds: { ...CLIENT_SESSION_LIMITS.kinds, jobReply: { maxBytes: 64 * KiB, skipOversized: true } },
};

const bigReply = encode({ jobReply: { computeId: 'c-7', jobId: 42, status: dispy.JobStatus.FINISHED, stdout: 'x'.repeat(200 * KiB) } });
const pulse = encode({ pulse: { busy: 1 } });

/** Feeds `stream` in chunks of `size` bytes and returns every frame decoded. */
function feed(decoder: FrameDecoder, stream: Buffer, size: number): DecodedFrame[] {
  const frames: DecodedFrame[] = [];
  for (let at = 0; at < stream.length; at += size) frames.push(...decoder.push(stream.subarray(at, at + size)));
  return frames;
}

describe('an oversized JobReply at a client', () => {
  it('stands for a Terminated reply of its job, naming the size and the limit; the frames after it still arrive', () => {
    const stream = Buffer.concat([framed(pulse), framed(bigReply), framed(pulse)]);
    for (const chunk of [1, 7, 1000, 64 * KiB, stream.length]) {
      const decoder = new FrameDecoder(SMALL);
      const frames = feed(decoder, stream, chunk);
      expect(frames.map((frame) => frame.kind)).toEqual(['pulse', 'jobReply', 'pulse']);
      const reply = dispy.Frame.decode(frames[1]!.message).jobReply!;
      expect(frames[1]!.oversized).toEqual({ bytes: bigReply.length, limit: 64 * KiB });
      expect(reply.computeId).toBe('c-7');
      expect(Number(reply.jobId)).toBe(42);
      expect(reply.status).toBe(dispy.JobStatus.TERMINATED);
      expect(reply.exception).toContain(`reply to this job is ${bigReply.length} bytes, over this client's limit of ${64 * KiB} bytes`);
      expect(reply.stdout).toBe('');
      expect(decoder.pendingBytes).toBe(0);
    }
  });

  it('never buffers the skipped bytes', () => {
    const decoder = new FrameDecoder(SMALL);
    const stream = framed(bigReply);
    decoder.push(stream.subarray(0, 100 * KiB));
    expect(decoder.pendingBytes).toBe(0);
  });

  it('is refused as before when its head names no job', () => {
    const noIds = encode({ jobReply: { status: dispy.JobStatus.FINISHED, stdout: 'x'.repeat(100 * KiB) } });
    const decoder = new FrameDecoder(SMALL);
    expect(() => decoder.push(framed(noIds))).toThrow(expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE }));
  });

  it('ends the connection under SESSION_LIMITS, which the node keeps', () => {
    const decoder = new FrameDecoder({ ...SESSION_LIMITS, maxFrameBytes: 64 * KiB });
    expect(() => decoder.push(framed(bigReply))).toThrow(expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE }));
  });

  it('leaves other kinds refused, and frames with an attachment judged from their header', () => {
    const setup = encode({ setup: { computeId: 'c', source: 'y'.repeat(100 * KiB) } });
    expect(() => new FrameDecoder(SMALL).push(framed(setup))).toThrow(expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE }));
    const header = frameHeader(10, 100 * KiB);
    expect(() => new FrameDecoder(SMALL).push(header)).toThrow(expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE }));
  });
});
