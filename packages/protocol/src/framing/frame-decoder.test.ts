import { describe, expect, it } from 'vitest';
import { dispy } from '../schema/generated.js';
import { FrameError } from '../errors/frame-error.js';
import {
  ATTACHED_FRAME_HEADER_BYTES,
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  MAX_MESSAGE_BYTES,
  frameHeader,
  type DecodedFrame,
} from './frame-decoder.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');
/** The messages of frames that have no attachment, in hex. */
const toHex = (frames: DecodedFrame[]): string[] =>
  frames.map((frame) => {
    expect(frame.attachment).toBeUndefined();
    return frame.message.toString('hex');
  });
const texts = (frames: DecodedFrame[]): string[] => frames.map((frame) => String(frame.message));

/*
 * Golden vectors: three frames as they appear on the wire, each a 4-byte big-endian length then
 * the body. The bodies are real protobuf Frames (checked below), and the middle one is empty.
 */
const PULSE_BODY = '52020802'; // Frame { pulse: { busy: 2 } }
const EMPTY_BODY = ''; // Frame {} (zero-length frame)
const CLOSE_REPLY_BODY = '62040a026331'; // Frame { closeReply: { computeId: "c1" } }
const STREAM_HEX = `00000004 ${PULSE_BODY}  00000000  00000006 ${CLOSE_REPLY_BODY}`;
const STREAM = hex(STREAM_HEX);
const EXPECTED = [PULSE_BODY, EMPTY_BODY, CLOSE_REPLY_BODY];

function frameOf(body: Buffer): Buffer {
  return Buffer.concat([frameHeader(body.length), body]);
}

function expectTooLarge(action: () => unknown, size: number, limit: number): void {
  let thrown: unknown;
  try {
    action();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(FrameError);
  expect((thrown as FrameError).code).toBe('DISPY_ERR_FRAME_TOO_LARGE');
  expect((thrown as FrameError).message).toContain(`${size} bytes`);
  expect((thrown as FrameError).message).toContain(`limit of ${limit} bytes`);
}

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
    expect(() => frameHeader(MAX_MESSAGE_BYTES + 1)).toThrow(RangeError);
  });
});

describe('FrameDecoder golden vectors', () => {
  it('the golden bodies are the protobuf encodings of the frames they claim to be', () => {
    expect(Buffer.from(dispy.Frame.encode({ pulse: { busy: 2 } }).finish()).toString('hex')).toBe(PULSE_BODY);
    expect(Buffer.from(dispy.Frame.encode({}).finish()).toString('hex')).toBe(EMPTY_BODY);
    expect(Buffer.from(dispy.Frame.encode({ closeReply: { computeId: 'c1' } }).finish()).toString('hex')).toBe(
      CLOSE_REPLY_BODY,
    );
    expect(Buffer.concat(EXPECTED.map((body) => frameOf(hex(body)))).toString('hex')).toBe(STREAM.toString('hex'));
  });

  it('decodes a stream of three frames, including an empty one, pushed in one chunk', () => {
    const decoder = new FrameDecoder();
    const frames = decoder.push(STREAM);
    expect(toHex(frames)).toEqual(EXPECTED);
    expect(frames[1]!.message).toHaveLength(0);
    expect(decoder.pendingBytes).toBe(0);
    expect(dispy.Frame.decode(frames[0]!.message).pulse?.busy).toBe(2);
    expect(dispy.Frame.decode(frames[2]!.message).closeReply?.computeId).toBe('c1');
  });

  it('yields identical frames when the stream is split into two chunks at every possible point', () => {
    for (let split = 0; split <= STREAM.length; split++) {
      const decoder = new FrameDecoder();
      const frames = [...decoder.push(STREAM.subarray(0, split)), ...decoder.push(STREAM.subarray(split))];
      expect(toHex(frames), `split at byte ${split}`).toEqual(EXPECTED);
      expect(decoder.pendingBytes, `split at byte ${split}`).toBe(0);
    }
  });

  it('yields identical frames when the stream arrives byte by byte', () => {
    const decoder = new FrameDecoder();
    const frames: DecodedFrame[] = [];
    const completedAt: number[] = [];
    for (let i = 0; i < STREAM.length; i++) {
      const out = decoder.push(STREAM.subarray(i, i + 1));
      if (out.length > 0) completedAt.push(i);
      frames.push(...out);
    }
    expect(toHex(frames)).toEqual(EXPECTED);
    // Frame 1 completes on its last body byte (7); the empty frame and frame 3 on their own last bytes.
    expect(completedAt).toEqual([7, 11, 21]);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('yields identical frames for the stream split at every pair of points (three chunks)', () => {
    for (let a = 0; a <= STREAM.length; a++) {
      for (let b = a; b <= STREAM.length; b++) {
        const decoder = new FrameDecoder();
        const frames = [
          ...decoder.push(STREAM.subarray(0, a)),
          ...decoder.push(STREAM.subarray(a, b)),
          ...decoder.push(STREAM.subarray(b)),
        ];
        expect(toHex(frames), `split at ${a} and ${b}`).toEqual(EXPECTED);
      }
    }
  });

  it('returns nothing for an empty chunk and keeps its state', () => {
    const decoder = new FrameDecoder();
    expect(decoder.push(Buffer.alloc(0))).toEqual([]);
    expect(decoder.push(STREAM.subarray(0, 3))).toEqual([]);
    expect(decoder.push(Buffer.alloc(0))).toEqual([]);
    expect(decoder.pendingBytes).toBe(3);
    expect(toHex(decoder.push(STREAM.subarray(3)))).toEqual(EXPECTED);
  });

  it('decodes a frame body that spans many chunks of a longer stream', () => {
    const body = Buffer.alloc(10_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const stream = Buffer.concat([frameOf(body), STREAM, frameOf(body)]);
    const decoder = new FrameDecoder();
    const frames: DecodedFrame[] = [];
    for (let offset = 0; offset < stream.length; offset += 777) {
      frames.push(...decoder.push(stream.subarray(offset, offset + 777)));
    }
    expect(frames).toHaveLength(5);
    expect(frames[0]!.message.equals(body)).toBe(true);
    expect(toHex(frames.slice(1, 4))).toEqual(EXPECTED);
    expect(frames[4]!.message.equals(body)).toBe(true);
  });
});

describe('FrameDecoder size limit', () => {
  it('refuses a frame whose header exceeds the limit before buffering its body', () => {
    const decoder = new FrameDecoder(1024);
    // Only the 4 header bytes are pushed: no body byte has arrived yet.
    expectTooLarge(() => decoder.push(frameHeader(1025)), 1025, 1024);
  });

  it('refuses an oversized header completed across two chunks', () => {
    const decoder = new FrameDecoder(1024);
    const header = frameHeader(1025);
    expect(decoder.push(header.subarray(0, 2))).toEqual([]);
    expectTooLarge(() => decoder.push(header.subarray(2)), 1025, 1024);
  });

  it('refuses an oversized frame that follows valid ones in the same chunk', () => {
    const decoder = new FrameDecoder(16);
    expectTooLarge(() => decoder.push(Buffer.concat([STREAM, frameHeader(17)])), 17, 16);
  });

  it('accepts a frame of exactly the limit', () => {
    const decoder = new FrameDecoder(1024);
    const body = Buffer.alloc(1024, 0xab);
    expect(decoder.push(frameHeader(1024))).toEqual([]);
    const frames = decoder.push(body);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.message.equals(body)).toBe(true);
  });

  it('uses a 64 MiB limit by default', () => {
    expect(DEFAULT_MAX_FRAME_BYTES).toBe(64 * 1024 * 1024);
    expect(new FrameDecoder().push(frameHeader(DEFAULT_MAX_FRAME_BYTES))).toEqual([]);
    expectTooLarge(
      () => new FrameDecoder().push(frameHeader(DEFAULT_MAX_FRAME_BYTES + 1)),
      DEFAULT_MAX_FRAME_BYTES + 1,
      DEFAULT_MAX_FRAME_BYTES,
    );
    expectTooLarge(() => new FrameDecoder().push(hex('7fffffff')), MAX_MESSAGE_BYTES, DEFAULT_MAX_FRAME_BYTES);
    expectTooLarge(() => new FrameDecoder().push(hex('ffffffff ffffffff')), MAX_MESSAGE_BYTES + 0xffffffff, DEFAULT_MAX_FRAME_BYTES);
  });

  it('with a limit of 0 accepts only empty frames', () => {
    const decoder = new FrameDecoder(0);
    expect(toHex(decoder.push(hex('00000000 00000000')))).toEqual(['', '']);
    expectTooLarge(() => decoder.push(hex('00000001 ff')), 1, 0);
  });
});

describe('FrameDecoder pendingBytes', () => {
  it('counts bytes received but not yet returned; a completed header is consumed', () => {
    const decoder = new FrameDecoder();
    const frame = frameOf(Buffer.from('0123456789'));
    expect(decoder.pendingBytes).toBe(0);

    decoder.push(frame.subarray(0, 2)); // half a header
    expect(decoder.pendingBytes).toBe(2);

    decoder.push(frame.subarray(2, 7)); // rest of the header + 3 body bytes
    expect(decoder.pendingBytes).toBe(3);

    decoder.push(frame.subarray(7, 13)); // 6 more body bytes, one short
    expect(decoder.pendingBytes).toBe(9);

    const frames = decoder.push(frame.subarray(13));
    expect(texts(frames)).toEqual(['0123456789']);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('keeps the bytes of the next frame pending after returning a complete one', () => {
    const decoder = new FrameDecoder();
    const frames = decoder.push(Buffer.concat([frameOf(Buffer.from('abc')), hex('0000')]));
    expect(texts(frames)).toEqual(['abc']);
    expect(decoder.pendingBytes).toBe(2);
    expect(texts(decoder.push(hex('0002 7879')))).toEqual(['xy']);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('tracks pending bytes exactly while the golden stream arrives byte by byte', () => {
    // After byte i is pushed, pending = bytes received since the last consumed header or frame.
    const expected = [1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 0];
    const decoder = new FrameDecoder();
    const pending: number[] = [];
    for (let i = 0; i < STREAM.length; i++) {
      decoder.push(STREAM.subarray(i, i + 1));
      pending.push(decoder.pendingBytes);
    }
    expect(pending).toEqual(expected);
  });
});

describe('FrameDecoder attachments', () => {
  // Frame { pulse: { busy: 2 } } with the 3-byte attachment "xyz", between two plain frames.
  const ATTACHED_STREAM = hex(`00000004 ${PULSE_BODY}  80000004 00000003 ${PULSE_BODY} 78797a  00000006 ${CLOSE_REPLY_BODY}`);

  function describeFrames(frames: DecodedFrame[]): Array<[string, string | undefined]> {
    return frames.map((frame) => [frame.message.toString('hex'), frame.attachment && Buffer.concat(frame.attachment).toString()]);
  }
  const ATTACHED_EXPECTED: Array<[string, string | undefined]> = [
    [PULSE_BODY, undefined],
    [PULSE_BODY, 'xyz'],
    [CLOSE_REPLY_BODY, undefined],
  ];

  it('the golden stream is what frameHeader writes', () => {
    const attached = Buffer.concat([frameHeader(4, 3), hex(PULSE_BODY), Buffer.from('xyz')]);
    expect(ATTACHED_STREAM.includes(attached)).toBe(true);
  });

  it('returns a frame with its attachment, between plain frames, however the stream is split', () => {
    for (let a = 0; a <= ATTACHED_STREAM.length; a++) {
      for (let b = a; b <= ATTACHED_STREAM.length; b++) {
        const decoder = new FrameDecoder();
        const frames = [
          ...decoder.push(ATTACHED_STREAM.subarray(0, a)),
          ...decoder.push(ATTACHED_STREAM.subarray(a, b)),
          ...decoder.push(ATTACHED_STREAM.subarray(b)),
        ];
        expect(describeFrames(frames), `split at ${a} and ${b}`).toEqual(ATTACHED_EXPECTED);
        expect(decoder.pendingBytes).toBe(0);
      }
    }
  });

  it('hands the attachment over as views of the chunks it arrived in, not a copy', () => {
    const attachment = Buffer.alloc(3000, 7);
    const stream = Buffer.concat([frameHeader(4, attachment.length), hex(PULSE_BODY), attachment]);
    const chunks = [stream.subarray(0, 1000), Buffer.from(stream.subarray(1000, 2000)), Buffer.from(stream.subarray(2000))];
    const decoder = new FrameDecoder();
    const frames = chunks.flatMap((chunk) => decoder.push(chunk));
    expect(frames).toHaveLength(1);
    const pieces = frames[0]!.attachment!;
    expect(pieces.map((piece) => piece.length)).toEqual([1000 - 12, 1000, stream.length - 2000]);
    pieces.forEach((piece, i) => expect(piece.buffer).toBe(chunks[i]!.buffer));
    expect(Buffer.concat(pieces).equals(attachment)).toBe(true);
  });

  it('returns an empty attachment as no pieces', () => {
    const frames = new FrameDecoder().push(Buffer.concat([frameHeader(4, 0), hex(PULSE_BODY)]));
    expect(frames).toEqual([{ message: hex(PULSE_BODY), attachment: [] }]);
  });

  it('counts message and attachment together against the limit, as soon as the 8-byte header is complete', () => {
    const decoder = new FrameDecoder(1024);
    const header = frameHeader(24, 1001);
    expect(decoder.push(header.subarray(0, 6))).toEqual([]);
    expectTooLarge(() => decoder.push(header.subarray(6)), 1025, 1024);
    const exact = new FrameDecoder(1024);
    expect(exact.push(frameHeader(24, 1000))).toEqual([]);
    expect(exact.push(Buffer.alloc(1024))).toHaveLength(1);
  });
});
