import { describe, expect, it } from 'vitest';
import { dispy } from '../schema/schema.js';
import { FrameError } from '../errors/frame-error.js';
import { ErrorCode } from '../errors/error-codes.js';
import { FrameDecoder, type DecodedFrame } from './frame-decoder.js';
import { frameHeader } from './frame-header.js';
import { DEFAULT_MAX_FRAME_BYTES, HANDSHAKE_LIMITS, MAX_REPEATED_ENTRIES, SESSION_LIMITS, type FrameLimits } from './frame-limits.js';

const MiB = 1024 * 1024;
const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const encode = (frame: dispy.IFrame): Buffer => Buffer.from(dispy.Frame.encode(frame).finish());
/** The messages of frames that have no attachment, in hex. */
const toHex = (frames: DecodedFrame[]): string[] =>
  frames.map((frame) => {
    expect(frame.attachment).toBeUndefined();
    return frame.message.toString('hex');
  });

/*
 * Golden vectors: three frames as they appear on the wire, each a 4-byte big-endian length then
 * the body. The bodies are real protobuf Frames (checked below). The middle one's kind is field
 * 16, whose tag takes two bytes, and it carries a request id after its kind.
 */
const PULSE_BODY = '52020802'; // Frame { pulse: { busy: 2 } }
const SET_CPUS_REPLY_BODY = '8201021002 800207'; // Frame { setCpusReply: { cpus: 2 }, requestId: 7 }
const CLOSE_REPLY_BODY = '62040a026331'; // Frame { closeReply: { computeId: "c1" } }
const STREAM_HEX = `00000004 ${PULSE_BODY}  00000008 ${SET_CPUS_REPLY_BODY}  00000006 ${CLOSE_REPLY_BODY}`;
const STREAM = hex(STREAM_HEX);
const EXPECTED = [PULSE_BODY, SET_CPUS_REPLY_BODY, CLOSE_REPLY_BODY].map((body) => body.replace(/\s+/g, ''));

function frameOf(body: Buffer, attachment?: Buffer): Buffer {
  if (attachment === undefined) return Buffer.concat([frameHeader(body.length), body]);
  return Buffer.concat([frameHeader(body.length, attachment.length), body, attachment]);
}

/** SESSION_LIMITS with other figures. */
function sessionWith(changes: Partial<FrameLimits>): FrameLimits {
  return { ...SESSION_LIMITS, ...changes };
}

/** The FrameError `action` throws. */
function refusal(action: () => unknown): FrameError {
  let thrown: unknown;
  try {
    action();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(FrameError);
  return thrown as FrameError;
}

function expectTooLarge(action: () => unknown, size: number, limit: number, what = 'frame'): void {
  const error = refusal(action);
  expect(error.code).toBe(ErrorCode.FRAME_TOO_LARGE);
  expect(error.message).toBe(`${what} of ${size} bytes exceeds the limit of ${limit} bytes`);
}

describe('FrameDecoder golden vectors', () => {
  it('the golden bodies are the protobuf encodings of the frames they claim to be', () => {
    expect(encode({ pulse: { busy: 2 } }).toString('hex')).toBe(EXPECTED[0]);
    expect(encode({ setCpusReply: { cpus: 2 }, requestId: 7 }).toString('hex')).toBe(EXPECTED[1]);
    expect(encode({ closeReply: { computeId: 'c1' } }).toString('hex')).toBe(EXPECTED[2]);
    expect(Buffer.concat(EXPECTED.map((body) => frameOf(hex(body)))).toString('hex')).toBe(STREAM.toString('hex'));
  });

  it('decodes a stream of three frames pushed in one chunk, with their kinds', () => {
    const decoder = new FrameDecoder();
    const frames = decoder.push(STREAM);
    expect(toHex(frames)).toEqual(EXPECTED);
    expect(frames.map((frame) => frame.kind)).toEqual(['pulse', 'setCpusReply', 'closeReply']);
    expect(decoder.pendingBytes).toBe(0);
    expect(dispy.Frame.decode(frames[0]!.message).pulse?.busy).toBe(2);
    expect(dispy.Frame.decode(frames[1]!.message).requestId).toBe(7);
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
    // Each frame completes on its last body byte.
    expect(completedAt).toEqual([7, 19, 29]);
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
    const body = encode({ jobReply: { stdout: 'abcdefghij'.repeat(1000) } });
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

  it('next() returns one frame at a time, and undefined until the next is complete', () => {
    const decoder = new FrameDecoder();
    decoder.add(STREAM.subarray(0, STREAM.length - 1));
    expect(decoder.next()?.kind).toBe('pulse');
    expect(decoder.next()?.kind).toBe('setCpusReply');
    expect(decoder.next()).toBeUndefined();
    decoder.add(STREAM.subarray(STREAM.length - 1));
    expect(decoder.next()?.kind).toBe('closeReply');
    expect(decoder.next()).toBeUndefined();
  });
});

describe('FrameDecoder size limit', () => {
  it('refuses a frame whose header exceeds the limit before buffering its body', () => {
    const decoder = new FrameDecoder(sessionWith({ maxFrameBytes: 1024 }));
    // Only the 4 header bytes are pushed: no body byte has arrived yet.
    expectTooLarge(() => decoder.push(frameHeader(1025)), 1025, 1024);
  });

  it('refuses an oversized header completed across two chunks', () => {
    const decoder = new FrameDecoder(sessionWith({ maxFrameBytes: 1024 }));
    const header = frameHeader(1025);
    expect(decoder.push(header.subarray(0, 2))).toEqual([]);
    expectTooLarge(() => decoder.push(header.subarray(2)), 1025, 1024);
  });

  it('refuses an oversized frame that follows valid ones in the same chunk', () => {
    const decoder = new FrameDecoder(sessionWith({ maxFrameBytes: 16 }));
    expectTooLarge(() => decoder.push(Buffer.concat([STREAM, frameHeader(17)])), 17, 16);
  });

  it('accepts a frame of exactly the limit', () => {
    const decoder = new FrameDecoder(sessionWith({ maxFrameBytes: 1024 }));
    let stdout = 'x'.repeat(1000);
    while (encode({ jobReply: { stdout } }).length < 1024) stdout += 'x';
    const body = encode({ jobReply: { stdout } });
    expect(body).toHaveLength(1024);
    expect(decoder.push(frameHeader(1024))).toEqual([]);
    const frames = decoder.push(body);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.message.equals(body)).toBe(true);
  });

  it('uses SESSION_LIMITS, 64 MiB in all, by default', () => {
    expect(DEFAULT_MAX_FRAME_BYTES).toBe(64 * 1024 * 1024);
    expect(new FrameDecoder().currentLimits).toBe(SESSION_LIMITS);
    expect(new FrameDecoder().push(frameHeader(DEFAULT_MAX_FRAME_BYTES))).toEqual([]);
    expectTooLarge(
      () => new FrameDecoder().push(frameHeader(DEFAULT_MAX_FRAME_BYTES + 1)),
      DEFAULT_MAX_FRAME_BYTES + 1,
      DEFAULT_MAX_FRAME_BYTES,
    );
    expectTooLarge(() => new FrameDecoder().push(hex('7fffffff')), 0x7fffffff, DEFAULT_MAX_FRAME_BYTES);
    expectTooLarge(() => new FrameDecoder().push(hex('ffffffff ffffffff')), 0x7fffffff + 0xffffffff, DEFAULT_MAX_FRAME_BYTES);
  });

  it("refuses a frame over its kind's limit on the message's first byte", () => {
    const decoder = new FrameDecoder();
    const limit = SESSION_LIMITS.kinds.cancel!.maxBytes;
    // The header and the first tag (Cancel) of a frame 1 byte over: the rest never comes.
    expect(decoder.push(frameHeader(limit + 1))).toEqual([]);
    expectTooLarge(() => decoder.push(hex('4a')), limit + 1, limit, 'cancel frame');
    expect(decoder.pendingBytes).toBe(1);
  });

  it('refuses a two-byte kind over its limit once both bytes have arrived', () => {
    const decoder = new FrameDecoder();
    const limit = SESSION_LIMITS.kinds.setCpusReply!.maxBytes;
    expect(decoder.push(Buffer.concat([frameHeader(limit + 1), hex('82')]))).toEqual([]);
    expectTooLarge(() => decoder.push(hex('01')), limit + 1, limit, 'setCpusReply frame');
  });
});

describe('FrameDecoder kinds', () => {
  it('refuses an empty message as a frame of unknown kind, from its header', () => {
    const error = refusal(() => new FrameDecoder().push(hex('00000000')));
    expect(error.code).toBe(ErrorCode.FRAME_MALFORMED);
    expect(error.message).toContain('unknown kind');
  });

  it.each([
    ['field 40, which is no kind', '00000003 c20200'],
    ['request_id (field 32) first', '00000003 800207'],
    ['field 6 (job) as a varint', '00000002 3001'],
    ['a tag of three bytes', '00000004 8280010a'],
    ['a two-byte tag cut short by the message length', '00000001 82'],
  ])('refuses a frame whose first field is %s as malformed', (_what, bytes) => {
    const error = refusal(() => new FrameDecoder().push(hex(bytes)));
    expect(error.code).toBe(ErrorCode.FRAME_MALFORMED);
    expect(error.message).toContain('unknown kind');
  });

  it('refuses a kind the limits do not list, naming the stage', () => {
    const limits: FrameLimits = { stage: 'in this test', maxFrameBytes: 1024, kinds: { pulse: { maxBytes: 1024 } }, maxRepeated: 0 };
    expect(new FrameDecoder(limits).push(frameOf(hex(PULSE_BODY)))).toHaveLength(1);
    const error = refusal(() => new FrameDecoder(limits).push(frameOf(encode({ auth: { version: 3 } }))));
    expect(error.code).toBe(ErrorCode.PROTOCOL);
    expect(error.message).toBe('auth frames are not accepted in this test');
  });

  it('refuses an attachment on a kind that carries none', () => {
    const error = refusal(() => new FrameDecoder().push(frameOf(hex(PULSE_BODY), Buffer.from('x'))));
    expect(error.code).toBe(ErrorCode.PROTOCOL);
    expect(error.message).toBe('pulse frames carry no attachment');
  });

  it('refuses a frame that holds a second kind after its first', () => {
    const job = encode({ job: { computeId: 'c1', jobId: 1 } });
    const smuggled = Buffer.concat([job, encode({ jobAck: { jobIds: [1, 2, 3] } })]);
    // protobufjs would decode this as a jobAck: the last oneof field wins.
    expect(dispy.Frame.decode(smuggled).kind).toBe('jobAck');
    const error = refusal(() => new FrameDecoder().push(frameOf(smuggled, Buffer.alloc(1))));
    expect(error.code).toBe(ErrorCode.FRAME_MALFORMED);
    expect(error.message).toBe('malformed frame: a second kind (jobAck) after job');
    // The same kind twice is refused too.
    expect(refusal(() => new FrameDecoder().push(frameOf(Buffer.concat([hex(PULSE_BODY), hex(PULSE_BODY)])))).code).toBe(
      ErrorCode.FRAME_MALFORMED,
    );
  });

  it.each([
    ['a field longer than the message', '00000004 52050802'],
    ['a varint cut short', '00000005 52020802 80'],
    ['a group (wire type 3)', '00000005 52020802 0b'],
    ['a varint of 11 bytes', '00000011 52020802 c002 ffffffffffffffffffff 01'],
  ])('refuses %s as malformed before decoding it', (_what, bytes) => {
    expect(refusal(() => new FrameDecoder().push(hex(bytes))).code).toBe(ErrorCode.FRAME_MALFORMED);
  });

  it('accepts unknown fields after the kind', () => {
    // Frame { pulse: { busy: 2 } } then field 40 (varint 1): a later version may add fields.
    expect(new FrameDecoder().push(hex('00000007 52020802 c00201')).map((frame) => frame.kind)).toEqual(['pulse']);
  });
});

describe('FrameDecoder before authentication (HANDSHAKE_LIMITS)', () => {
  it('refuses a 24 MB JobAck of packed zeros from its header alone', () => {
    // The attack that froze a node: Frame { jobAck: { jobIds: [0 × 24,000,000] } }.
    const entries = 24_000_000;
    const list = Buffer.concat([hex('0a'), varint(entries)]);
    const body = Buffer.concat([hex('42'), varint(list.length + entries), list]);
    const header = frameHeader(body.length + entries);
    const decoder = new FrameDecoder(HANDSHAKE_LIMITS);
    // The attacker's first read: the header and the start of the body.
    const firstRead = Buffer.concat([header, body, Buffer.alloc(64 * 1024 - header.length - body.length)]);
    expectTooLarge(() => decoder.push(firstRead), body.length + entries, 1024);
  });

  it('refuses a frame claiming a 64 MiB attachment from its 8-byte header', () => {
    expectTooLarge(() => new FrameDecoder(HANDSHAKE_LIMITS).push(frameHeader(20, 64 * MiB)), 20 + 64 * MiB, 1024);
  });

  it('refuses any attachment, however small', () => {
    const error = refusal(() => new FrameDecoder(HANDSHAKE_LIMITS).push(frameHeader(20, 1)));
    expect(error.code).toBe(ErrorCode.PROTOCOL);
    expect(error.message).toBe('no frame may carry an attachment before authentication');
  });

  it('refuses a handshake frame over 1 KiB and accepts one of 1 KiB', () => {
    let clientName = 'n'.repeat(1000);
    while (encode({ auth: { version: 3, clientName } }).length < 1024) clientName += 'n';
    const decoder = new FrameDecoder(HANDSHAKE_LIMITS);
    expect(decoder.push(frameOf(encode({ auth: { version: 3, clientName } })))).toHaveLength(1);
    const over = encode({ auth: { version: 3, clientName: `${clientName}n` } });
    expectTooLarge(() => decoder.push(frameOf(over)), 1025, 1024);
  });

  it('refuses a job frame on the first byte of its message', () => {
    const decoder = new FrameDecoder(HANDSHAKE_LIMITS);
    expect(decoder.push(frameHeader(200))).toEqual([]);
    const error = refusal(() => decoder.push(hex('32')));
    expect(error.code).toBe(ErrorCode.PROTOCOL);
    expect(error.message).toBe('job frames are not accepted before authentication');
  });

  it('accepts the handshake frames', () => {
    const frames = new FrameDecoder(HANDSHAKE_LIMITS).push(
      Buffer.concat([
        frameOf(encode({ hello: { version: 3, nonce: Buffer.alloc(16) } })),
        frameOf(encode({ auth: { version: 3, nonce: Buffer.alloc(16), mac: Buffer.alloc(32), clientName: 'client' } })),
        frameOf(encode({ authResult: { ok: true, mac: Buffer.alloc(32), nodeName: 'node' } })),
        frameOf(encode({ error: { code: ErrorCode.AUTH, message: 'refused' } })),
      ]),
    );
    expect(frames.map((frame) => frame.kind)).toEqual(['hello', 'auth', 'authResult', 'error']);
  });

  it('judges each frame by the limits in force when next() reaches it', () => {
    const stream = Buffer.concat([
      frameOf(encode({ auth: { version: 3 } })),
      frameOf(encode({ job: { computeId: 'c1', jobId: 1 } }), Buffer.from('args')),
    ]);
    const decoder = new FrameDecoder(HANDSHAKE_LIMITS);
    decoder.add(stream);
    expect(decoder.next()?.kind).toBe('auth');
    decoder.setLimits(SESSION_LIMITS);
    const job = decoder.next();
    expect(job?.kind).toBe('job');
    expect(Buffer.concat(job!.attachment!).toString()).toBe('args');

    const unswitched = new FrameDecoder(HANDSHAKE_LIMITS);
    unswitched.add(stream);
    expect(unswitched.next()?.kind).toBe('auth');
    expect(refusal(() => unswitched.next()).message).toBe('no frame may carry an attachment before authentication');
  });
});

describe('FrameDecoder repeated fields', () => {
  const jobAck = (jobIds: number[]): Buffer => encode({ jobAck: { jobIds } });

  it(`accepts a JobAck of ${MAX_REPEATED_ENTRIES} entries and refuses one more, naming the field`, () => {
    const ids = Array.from({ length: MAX_REPEATED_ENTRIES }, (_, i) => i + 1);
    const frames = new FrameDecoder().push(frameOf(jobAck(ids)));
    expect(dispy.Frame.decode(frames[0]!.message).jobAck?.jobIds).toHaveLength(MAX_REPEATED_ENTRIES);

    const error = refusal(() => new FrameDecoder().push(frameOf(jobAck([...ids, 0]))));
    expect(error.code).toBe(ErrorCode.FRAME_TOO_LARGE);
    expect(error.message).toBe(`jobAck.jobIds has more than ${MAX_REPEATED_ENTRIES} entries, the limit of one frame`);
  });

  it('the largest JobAck a session accepts holds at most 10 bytes per entry allowed', () => {
    // Packed zeros are one byte per entry: the byte limit alone would let 10 times as many
    // through to the protobuf decoder; the count before decoding refuses them.
    const limit = SESSION_LIMITS.kinds.jobAck!.maxBytes;
    expect(limit).toBeLessThanOrEqual(MAX_REPEATED_ENTRIES * 10 + 1024);
    let zeros = limit - 16;
    while (jobAck(new Array<number>(zeros).fill(0)).length < limit) zeros++;
    const body = jobAck(new Array<number>(zeros).fill(0));
    expect(body.length).toBe(limit);
    const error = refusal(() => new FrameDecoder().push(frameOf(body)));
    expect(error.message).toContain('jobAck.jobIds has more than');
  });

  it('counts entries of a list sent unpacked, and in several packed runs', () => {
    const limits = sessionWith({ maxRepeated: 3 });
    // JobAck { jobIds: 1, 2, 3 } unpacked: 08 01 08 02 08 03, then one more.
    expect(new FrameDecoder(limits).push(frameOf(hex('4206 080108020803')))).toHaveLength(1);
    expect(refusal(() => new FrameDecoder(limits).push(frameOf(hex('4208 08010802080308 04')))).message).toContain(
      'jobAck.jobIds has more than 3',
    );
    // Two packed runs of two entries each.
    expect(refusal(() => new FrameDecoder(limits).push(frameOf(hex('4208 0a020102 0a020304')))).message).toContain(
      'jobAck.jobIds has more than 3',
    );
  });

  it.each([
    ['setup.files', { setup: { files: [{ name: 'a' }, { name: 'b' }, { name: 'c' }] } }],
    ['setup.definitions', { setup: { definitions: [{}, {}, {}] } }],
    ['setup.globals', { setup: { globals: ['a', 'b', 'c'] } }],
    ['job.files', { job: { files: ['a', 'b', 'c'] } }],
    ['job.definitions', { job: { definitions: [{}, {}, {}] } }],
    ['fileWant.names', { fileWant: { names: ['a', 'b', 'c'] } }],
    ['fileWant.have', { fileWant: { have: [{}, {}, {}] } }],
  ] as Array<[string, dispy.IFrame]>)('refuses a frame with too many %s', (field, frame) => {
    const body = encode(frame);
    const attachment = frame.job ? Buffer.alloc(0) : undefined;
    expect(new FrameDecoder(sessionWith({ maxRepeated: 3 })).push(frameOf(body, attachment))).toHaveLength(1);
    const error = refusal(() => new FrameDecoder(sessionWith({ maxRepeated: 2 })).push(frameOf(body, attachment)));
    expect(error.code).toBe(ErrorCode.FRAME_TOO_LARGE);
    expect(error.message).toBe(`${field} has more than 2 entries, the limit of one frame`);
  });

  it('refuses too many entries before the attachment has arrived', () => {
    const body = encode({ job: { computeId: 'c1', jobId: 1, files: ['a', 'b', 'c'] } });
    const decoder = new FrameDecoder(sessionWith({ maxRepeated: 2 }));
    // The header and the message; the 1 MiB of arguments announced never comes.
    expect(() => decoder.push(Buffer.concat([frameHeader(body.length, MiB), body]))).toThrow('job.files has more than 2');
  });
});

describe('FrameDecoder pendingBytes', () => {
  const body = encode({ closeReply: { computeId: '0123456789' } });
  const frame = frameOf(body);

  it('counts bytes received but not yet returned; a completed header is consumed', () => {
    expect(body).toHaveLength(14);
    const decoder = new FrameDecoder();
    expect(decoder.pendingBytes).toBe(0);

    decoder.push(frame.subarray(0, 2)); // half a header
    expect(decoder.pendingBytes).toBe(2);

    decoder.push(frame.subarray(2, 7)); // rest of the header + 3 body bytes
    expect(decoder.pendingBytes).toBe(3);

    decoder.push(frame.subarray(7, 17)); // 10 more body bytes, one short
    expect(decoder.pendingBytes).toBe(13);

    const frames = decoder.push(frame.subarray(17));
    expect(frames.map((decoded) => decoded.message.toString('hex'))).toEqual([body.toString('hex')]);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('keeps the bytes of the next frame pending after returning a complete one', () => {
    const decoder = new FrameDecoder();
    expect(decoder.push(Buffer.concat([frame, frame.subarray(0, 2)]))).toHaveLength(1);
    expect(decoder.pendingBytes).toBe(2);
    expect(decoder.push(frame.subarray(2))).toHaveLength(1);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('tracks pending bytes exactly while the golden stream arrives byte by byte', () => {
    // After byte i is pushed, pending = bytes received since the last consumed header or frame.
    const expected = [1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 0];
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
  const FILE_CHUNK_BODY = '72020801'; // Frame { fileChunk: { transferId: 1 } }
  // A file chunk with the 3-byte attachment "xyz", between two plain frames.
  const ATTACHED_STREAM = hex(`00000004 ${PULSE_BODY}  80000004 00000003 ${FILE_CHUNK_BODY} 78797a  00000006 ${CLOSE_REPLY_BODY}`);

  function describeFrames(frames: DecodedFrame[]): Array<[string, string | undefined]> {
    return frames.map((frame) => [frame.message.toString('hex'), frame.attachment && Buffer.concat(frame.attachment).toString()]);
  }
  const ATTACHED_EXPECTED: Array<[string, string | undefined]> = [
    [PULSE_BODY, undefined],
    [FILE_CHUNK_BODY, 'xyz'],
    [CLOSE_REPLY_BODY, undefined],
  ];

  it('the golden stream is what frameHeader writes', () => {
    expect(encode({ fileChunk: { transferId: 1 } }).toString('hex')).toBe(FILE_CHUNK_BODY);
    const attached = Buffer.concat([frameHeader(4, 3), hex(FILE_CHUNK_BODY), Buffer.from('xyz')]);
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
    const stream = Buffer.concat([frameHeader(4, attachment.length), hex(FILE_CHUNK_BODY), attachment]);
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
    const frames = new FrameDecoder().push(Buffer.concat([frameHeader(4, 0), hex(FILE_CHUNK_BODY)]));
    expect(frames).toEqual([{ kind: 'fileChunk', message: hex(FILE_CHUNK_BODY), attachment: [] }]);
  });

  it('counts message and attachment together against the limit, as soon as the 8-byte header is complete', () => {
    const decoder = new FrameDecoder(sessionWith({ maxFrameBytes: 1024 }));
    const header = frameHeader(24, 1001);
    expect(decoder.push(header.subarray(0, 6))).toEqual([]);
    expectTooLarge(() => decoder.push(header.subarray(6)), 1025, 1024);
    const exact = new FrameDecoder(sessionWith({ maxFrameBytes: 1024 }));
    const body = encode({ fileChunk: { path: 'p'.repeat(20) } });
    expect(body).toHaveLength(24);
    expect(exact.push(Buffer.concat([frameHeader(24, 1000), body]))).toEqual([]);
    expect(exact.push(Buffer.alloc(1000))).toHaveLength(1);
  });
});

/** A protobuf varint. */
function varint(value: number): Buffer {
  const bytes: number[] = [];
  while (value >= 0x80) {
    bytes.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}
