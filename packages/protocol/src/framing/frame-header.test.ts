import { describe, expect, it } from 'vitest';
import { FrameError } from '../errors/frame-error.js';
import { ErrorCode } from '../errors/error-codes.js';
import {
  ATTACHED_FRAME_HEADER_BYTES,
  FRAME_HEADER_BYTES,
  MAX_MESSAGE_BYTES,
  frameHeader,
  readFrameHeader,
  type FrameHeader,
} from './frame-header.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

describe('frameHeader', () => {
  it('writes the message length as 4 big-endian bytes', () => {
    expect(FRAME_HEADER_BYTES).toBe(4);
    expect(frameHeader(0).toString('hex')).toBe('00000000');
    expect(frameHeader(6).toString('hex')).toBe('00000006');
    expect(frameHeader(0x01020304).toString('hex')).toBe('01020304');
    expect(frameHeader(MAX_MESSAGE_BYTES).toString('hex')).toBe('7fffffff');
  });

  it('with an attachment, sets the high bit of the message length and adds the attachment length', () => {
    expect(ATTACHED_FRAME_HEADER_BYTES).toBe(8);
    expect(frameHeader(6, 0).toString('hex')).toBe('8000000600000000');
    expect(frameHeader(4, 0x01020304).toString('hex')).toBe('8000000401020304');
  });

  it('refuses a message length that would set the high bit', () => {
    expect(() => frameHeader(MAX_MESSAGE_BYTES + 1)).toThrow(FrameError);
    expect(() => frameHeader(MAX_MESSAGE_BYTES + 1)).toThrow(`a frame's message of ${MAX_MESSAGE_BYTES + 1} bytes exceeds`);
  });
});

describe('readFrameHeader', () => {
  const header = (): FrameHeader => ({ messageBytes: -1, attachmentBytes: -1 });

  it('reads what frameHeader writes, at any offset, and says how long the header was', () => {
    const into = header();
    expect(readFrameHeader(hex('00000006'), 0, 4, 1024, into)).toBe(4);
    expect(into).toEqual({ messageBytes: 6, attachmentBytes: -1 });
    const stream = Buffer.concat([hex('ffff'), frameHeader(4, 0x0102), hex('ff')]);
    expect(readFrameHeader(stream, 2, stream.length, 1024, into)).toBe(8);
    expect(into).toEqual({ messageBytes: 4, attachmentBytes: 0x0102 });
    expect(readFrameHeader(frameHeader(9, 0), 0, 8, 1024, into)).toBe(8);
    expect(into).toEqual({ messageBytes: 9, attachmentBytes: 0 });
  });

  it('returns 0 and leaves `into` alone until the whole header has arrived', () => {
    const into = header();
    const attached = frameHeader(4, 3);
    for (let end = 0; end < 8; end++) expect(readFrameHeader(attached, 0, end, 1024, into), `${end} bytes`).toBe(0);
    for (let end = 0; end < 4; end++) expect(readFrameHeader(frameHeader(4), 0, end, 1024, into)).toBe(0);
    expect(into).toEqual(header());
  });

  it('refuses a frame over the limit, counting message and attachment, once its header is complete', () => {
    const into = header();
    expect(readFrameHeader(frameHeader(1024), 0, 4, 1024, into)).toBe(4);
    expect(readFrameHeader(frameHeader(1000, 24), 0, 8, 1024, into)).toBe(8);
    let thrown: unknown;
    try {
      readFrameHeader(frameHeader(1000, 25), 0, 8, 1024, into);
    } catch (error) {
      thrown = error;
    }
    expect(FrameError.isInstance(thrown)).toBe(true);
    expect((thrown as FrameError).code).toBe(ErrorCode.FRAME_TOO_LARGE);
    expect((thrown as FrameError).message).toBe('frame of 1025 bytes exceeds the limit of 1024 bytes');
    // Incomplete, it is not judged yet.
    expect(readFrameHeader(frameHeader(1000, 25), 0, 7, 1024, into)).toBe(0);
    expect(() => readFrameHeader(hex('ffffffff ffffffff'), 0, 8, 1024, into)).toThrow(`${0x7fffffff + 0xffffffff} bytes`);
  });

  it('reads a plain Uint8Array as well as a Buffer', () => {
    const into = header();
    expect(readFrameHeader(new Uint8Array([0x80, 0, 0, 1, 0, 0, 0x01, 0]), 0, 8, 1024, into)).toBe(8);
    expect(into).toEqual({ messageBytes: 1, attachmentBytes: 256 });
  });
});
