import { once } from 'node:events';
import { Server, connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { dispy } from '../schema/schema.js';
import { ErrorCode } from '../errors/error-codes.js';
import { channelKeys, newNonce, type ChannelKeys } from '../auth/hmac.js';
import { FrameOpener, FrameSealer, RECORD_BYTES, TAG_BYTES } from './frame-cipher.js';
import { FrameDecoder, type DecodedFrame } from './frame-decoder.js';
import { ATTACHED_FRAME_HEADER_BYTES, frameHeader, readFrameHeader, type FrameHeader } from './frame-header.js';
import { HANDSHAKE_LIMITS, SESSION_LIMITS, type FrameLimits } from './frame-limits.js';
import { FramedSocket, type Frame } from './framed-socket.js';

/*
 * The protected channel: frames sealed by one side's FrameSealer, read by the other side's
 * FrameDecoder once protected. Whatever is altered, replayed, reordered or spliced in from another
 * connection fails with DISPY_ERR_AUTH before the frame is handed over.
 */

const SECRET = 'a channel test secret of some length';

interface Connection {
  node: ChannelKeys;
  client: ChannelKeys;
}

function connection(secret = SECRET): Connection {
  const nodeNonce = newNonce();
  const clientNonce = newNonce();
  return { node: channelKeys(secret, 'node', nodeNonce, clientNonce), client: channelKeys(secret, 'client', nodeNonce, clientNonce) };
}

/** A frame's plain bytes: header, message and attachment. */
function plainFrame(frame: dispy.IFrame, attachment?: Buffer): Buffer {
  const payload = dispy.Frame.encode(frame).finish();
  return Buffer.concat([frameHeader(payload.length, attachment?.length), payload, ...(attachment === undefined ? [] : [attachment])]);
}

/**
 * The bytes of one sealed record holding one frame, its attachment (if any) sealed after the
 * record's body, as FramedSocket sends a frame with a large attachment.
 */
function sealFrame(sealer: FrameSealer, frame: dispy.IFrame, attachment?: Buffer): Buffer {
  const payload = dispy.Frame.encode(frame).finish();
  const header = frameHeader(payload.length, attachment?.length);
  return Buffer.concat(sealer.seal([header, payload], attachment === undefined ? undefined : [attachment]));
}

function protectedDecoder(keys: ChannelKeys, limits: FrameLimits = SESSION_LIMITS): FrameDecoder {
  const decoder = new FrameDecoder(limits);
  decoder.protect(new FrameOpener(keys.receive));
  return decoder;
}

function decode(decoder: FrameDecoder, bytes: Buffer): Array<{ frame: Frame; attachment?: Buffer }> {
  return decoder.push(bytes).map((decoded: DecodedFrame) => ({
    frame: dispy.Frame.decode(decoded.message),
    attachment: decoded.attachment === undefined ? undefined : Buffer.concat(decoded.attachment),
  }));
}

const JOB: dispy.IFrame = { job: { computeId: 'c7', jobId: 42 } };
const ARGUMENTS = Buffer.from('secret-arguments-'.repeat(100));

function authFailure(run: () => unknown): void {
  expect(run).toThrow(expect.objectContaining({ code: ErrorCode.AUTH }));
}

describe('the sealed frames', () => {
  it('round-trips frames with and without attachments, split at every byte', () => {
    const { node, client } = connection();
    const sealer = new FrameSealer(client.send);
    const bytes = Buffer.concat([
      sealFrame(sealer, JOB, ARGUMENTS),
      sealFrame(sealer, { jobAck: { jobIds: [1, 2] } }),
      // An empty attachment stays in its record's body.
      ...sealer.seal([plainFrame(JOB, Buffer.alloc(0))]),
    ]);
    expect(bytes.includes(Buffer.from('secret-arguments'))).toBe(false);
    const decoder = protectedDecoder(node);
    const out: Array<{ frame: Frame; attachment?: Buffer }> = [];
    // One byte at a time: headers, messages, attachments and tags all cut in every place.
    for (let i = 0; i < bytes.length; i++) out.push(...decode(decoder, bytes.subarray(i, i + 1)));
    expect(out.map((entry) => entry.frame.kind)).toEqual(['job', 'jobAck', 'job']);
    expect(out[0]!.attachment).toEqual(ARGUMENTS);
    expect(Number(out[0]!.frame.job!.jobId)).toBe(42);
    expect(out[1]!.attachment).toBeUndefined();
    expect(out[2]!.attachment).toEqual(Buffer.alloc(0));
  });

  it('refuses a frame with any one byte altered: header, message, tag or attachment', () => {
    const { node, client } = connection();
    const bytes = sealFrame(new FrameSealer(client.send), JOB, ARGUMENTS);
    // Past the header's first word (changing it changes the lengths, which are judged before anything is opened).
    for (const at of [5, 7, 8, 10, 8 + 20, bytes.length - TAG_BYTES - 1 - ARGUMENTS.length, 200, bytes.length - 1]) {
      const altered = Buffer.from(bytes);
      altered[at]! ^= 0x01;
      const decoder = protectedDecoder(node);
      expect(() => decode(decoder, altered), `byte ${at}`).toThrow();
    }
    const altered = Buffer.from(bytes);
    altered[bytes.length - 50]! ^= 0x80;
    authFailure(() => decode(protectedDecoder(node), altered));
  });

  it('refuses a frame replayed, frames reordered, and a frame from another connection', () => {
    const { node, client } = connection();
    const sealer = new FrameSealer(client.send);
    const first = sealFrame(sealer, JOB, ARGUMENTS);
    const second = sealFrame(sealer, { jobAck: { jobIds: [3] } });

    const replayed = protectedDecoder(node);
    expect(decode(replayed, first)).toHaveLength(1);
    authFailure(() => decode(replayed, first));

    authFailure(() => decode(protectedDecoder(node), second));

    const other = connection();
    const spliced = protectedDecoder(node);
    authFailure(() => decode(spliced, sealFrame(new FrameSealer(other.client.send), JOB, ARGUMENTS)));
  });

  it('refuses an attachment moved to another frame, and frames sealed with a wrong key', () => {
    const { node, client } = connection();
    const sealer = new FrameSealer(client.send);
    const a = sealFrame(sealer, JOB, ARGUMENTS);
    const b = sealFrame(sealer, JOB, ARGUMENTS);
    // b's message with a's (equal-length) attachment: each part is bound to its frame's number.
    const mixed = Buffer.concat([
      b.subarray(0, b.length - ARGUMENTS.length - TAG_BYTES),
      a.subarray(a.length - ARGUMENTS.length - TAG_BYTES),
    ]);
    const decoder = protectedDecoder(node);
    expect(decode(decoder, a)).toHaveLength(1);
    authFailure(() => decode(decoder, mixed));

    // The node's own sending key, and keys from another secret, open nothing the client sent.
    authFailure(() => decode(protectedDecoder({ send: node.send, receive: node.send }), sealFrame(new FrameSealer(client.send), JOB)));
    const wrong = connection('another secret of some length');
    authFailure(() => decode(protectedDecoder(wrong.node), sealFrame(new FrameSealer(client.send), JOB)));
  });

  it('refuses a plain frame once protected, and judges the kind after opening, before the attachment', () => {
    const { node, client } = connection();
    const payload = dispy.Frame.encode(JOB).finish();
    authFailure(() =>
      decode(protectedDecoder(node), Buffer.concat([frameHeader(payload.length + TAG_BYTES), payload, Buffer.alloc(TAG_BYTES)])),
    );
    // A sealed kind the limits refuse fails as soon as its message opens: the attachment is never awaited.
    const hello = sealFrame(new FrameSealer(client.send), { jobAck: { jobIds: [1] } }, ARGUMENTS);
    expect(() => decode(protectedDecoder(node), hello.subarray(0, hello.length - ARGUMENTS.length))).toThrow(
      expect.objectContaining({ code: ErrorCode.PROTOCOL }),
    );
  });
});

describe('the records', () => {
  const BIG = Buffer.alloc(40_000, 0x5a);

  it('carries many frames in one record, attachments in its body and the last one after it, split at every byte', () => {
    const { node, client } = connection();
    const sealer = new FrameSealer(client.send);
    const bigJob = dispy.Frame.encode({ job: { computeId: 'c7', jobId: 43 } }).finish();
    const bytes = Buffer.concat([
      ...sealer.seal(
        [plainFrame({ jobAck: { jobIds: [1] } }), plainFrame(JOB, ARGUMENTS), frameHeader(bigJob.length, BIG.length), bigJob],
        [BIG],
      ),
      ...sealer.seal([plainFrame({ jobAck: { jobIds: [2] } }), plainFrame({ jobAck: { jobIds: [3] } })]),
    ]);
    expect(bytes.includes(Buffer.from('secret-arguments'))).toBe(false);
    const decoder = protectedDecoder(node);
    const out: Array<{ frame: Frame; attachment?: Buffer }> = [];
    for (let i = 0; i < bytes.length; i++) out.push(...decode(decoder, bytes.subarray(i, i + 1)));
    expect(out.map((entry) => entry.frame.kind)).toEqual(['jobAck', 'job', 'job', 'jobAck', 'jobAck']);
    expect(out[1]!.attachment).toEqual(ARGUMENTS);
    expect(out[2]!.attachment).toEqual(BIG);
    expect(out.map((entry) => entry.frame.jobAck?.jobIds?.map(Number)[0] ?? Number(entry.frame.job!.jobId))).toEqual([1, 42, 43, 2, 3]);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('refuses a record that ends inside a frame, and an attachment after the body that its last frame does not announce', () => {
    const { node, client } = connection();
    const malformed = (body: Uint8Array[], attachment?: Buffer): void => {
      const sealed = Buffer.concat(new FrameSealer(client.send).seal(body, attachment && [attachment]));
      expect(() => decode(protectedDecoder(node), sealed)).toThrow(expect.objectContaining({ code: ErrorCode.FRAME_MALFORMED }));
    };
    const ack = plainFrame({ jobAck: { jobIds: [1, 2, 3] } });
    const job = dispy.Frame.encode(JOB).finish();
    // Cut inside a message, inside an attachment, and inside a header.
    malformed([ack.subarray(0, ack.length - 2)]);
    malformed([plainFrame(JOB, ARGUMENTS).subarray(0, 100)]);
    malformed([ack, ack.subarray(0, 3)]);
    // An attachment after the body: of a frame that has none, of another length, or of a frame whose attachment was in the body.
    malformed([ack], BIG);
    malformed([frameHeader(job.length, BIG.length - 1), job], BIG);
    malformed([plainFrame(JOB, ARGUMENTS)], BIG);
    // A frame announcing an attachment at the end of a record that has none after it.
    malformed([frameHeader(job.length, BIG.length), job]);
  });

  it('refuses a record larger than the limits allow from its header alone, before buffering its body', () => {
    const { node } = connection();
    // With the session's limits: one frame of the largest size (and its header), and the tags.
    const largest = SESSION_LIMITS.maxFrameBytes + ATTACHED_FRAME_HEADER_BYTES + 2 * TAG_BYTES;
    expect(decode(protectedDecoder(node), frameHeader(largest - 100, 100))).toEqual([]);
    expect(() => decode(protectedDecoder(node), frameHeader(largest - 100, 101))).toThrow(
      expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE }),
    );
    // With small limits, a record may still gather RECORD_BYTES of small frames.
    expect(decode(protectedDecoder(node, HANDSHAKE_LIMITS), frameHeader(RECORD_BYTES + 2 * TAG_BYTES))).toEqual([]);
    expect(() => decode(protectedDecoder(node, HANDSHAKE_LIMITS), frameHeader(RECORD_BYTES + 2 * TAG_BYTES + 1))).toThrow(
      expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE }),
    );
  });

  it("judges each frame in a record by the limits: a kind not accepted, a frame over its kind's limit, and a frame before its attachment arrives", () => {
    const { node, client } = connection();
    const sealer = new FrameSealer(client.send);
    // A pulse is not accepted before authentication: refused after the frames before it in the record.
    const beforeAuth = protectedDecoder(node, HANDSHAKE_LIMITS);
    const record = Buffer.concat(sealer.seal([plainFrame({ error: { code: 'X', message: 'one' } }), plainFrame({ pulse: {} })]));
    beforeAuth.add(record);
    expect(beforeAuth.next()?.kind).toBe('error');
    expect(() => beforeAuth.next()).toThrow(expect.objectContaining({ code: ErrorCode.PROTOCOL }));

    const small: FrameLimits = {
      ...SESSION_LIMITS,
      kinds: { ...SESSION_LIMITS.kinds, jobAck: { maxBytes: 20 }, job: { maxBytes: 1000, attachment: true } },
    };
    // A jobAck over its kind's 20 bytes, inside a record of small frames.
    const acks = Buffer.concat(
      new FrameSealer(client.send).seal([
        plainFrame({ jobAck: { jobIds: [1] } }),
        plainFrame({ jobAck: { jobIds: Array.from({ length: 30 }, (_, i) => i + 1) } }),
      ]),
    );
    expect(() => decode(protectedDecoder(node, small), acks)).toThrow(expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE }));
    // A job whose attachment, after the body, would take it over its kind's limit: refused from the body alone.
    const job = dispy.Frame.encode(JOB).finish();
    const sealed = Buffer.concat(new FrameSealer(client.send).seal([frameHeader(job.length, BIG.length), job], [BIG]));
    const header: FrameHeader = { messageBytes: -1, attachmentBytes: -1 };
    const headerBytes = readFrameHeader(sealed, 0, sealed.length, Infinity, header);
    expect(() => decode(protectedDecoder(node, small), sealed.subarray(0, headerBytes + header.messageBytes))).toThrow(
      expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE }),
    );
  });
});

describe('FramedSocket.protect', () => {
  const opened: Array<Server | Socket> = [];
  afterEach(async () => {
    for (const item of opened.splice(0)) {
      if (item instanceof Server) await new Promise((resolve) => item.close(resolve));
      else item.destroy();
    }
  });

  /** Two sockets connected over 127.0.0.1. */
  async function tcpPair(): Promise<{ client: Socket; server: Socket }> {
    const listener = createServer();
    opened.push(listener);
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    const accepted = once(listener, 'connection') as Promise<[Socket]>;
    const client = connect((listener.address() as AddressInfo).port, '127.0.0.1');
    opened.push(client);
    await once(client, 'connect');
    const [server] = await accepted;
    opened.push(server);
    return { client, server };
  }

  interface Side {
    framed: FramedSocket;
    received: Array<{ frame: Frame; attachment?: Buffer }>;
    closed: Promise<Error | undefined>;
  }

  function side(socket: Socket, keys: ChannelKeys): Side {
    const received: Side['received'] = [];
    let resolve!: (error?: Error) => void;
    const closed = new Promise<Error | undefined>((r) => (resolve = r));
    const framed = new FramedSocket(socket, {
      onFrame: (frame, attachment) => received.push({ frame, attachment: attachment && Buffer.concat(attachment) }),
      onClose: (error) => resolve(error),
    });
    framed.protect(keys);
    return { framed, received, closed };
  }

  it('carries frames sealed both ways, and a forged frame ends the connection on both sides with DISPY_ERR_AUTH', async () => {
    const pair = await tcpPair();
    const keys = connection();
    const client = side(pair.client, keys.client);
    const node = side(pair.server, keys.node);
    client.framed.send(JOB, ARGUMENTS);
    node.framed.send({ jobAck: { jobIds: [42] } });
    await vi.waitFor(() => expect(node.received).toHaveLength(1));
    await vi.waitFor(() => expect(client.received).toHaveLength(1));
    expect(node.received[0]!.attachment).toEqual(ARGUMENTS);
    expect(client.received[0]!.frame.jobAck?.jobIds?.map(Number)).toEqual([42]);

    // A frame the client never sealed, written under it as a man in the middle would.
    pair.client.write(sealFrame(new FrameSealer(connection().client.send), JOB, ARGUMENTS));
    expect(await node.closed).toMatchObject({ code: ErrorCode.AUTH });
    // The node told the client why, sealed (so the client could open it), and the connection closed.
    await client.closed;
    expect(client.received.map((entry) => entry.frame.kind)).toEqual(['jobAck', 'error']);
    expect(client.received[1]!.frame.error!.code).toBe(ErrorCode.AUTH);
    expect(node.received).toHaveLength(1);
  });

  it('seals the frames sent in one tick into records of at most RECORD_BYTES, and a large attachment after its record', async () => {
    const pair = await tcpPair();
    const keys = connection();
    const client = side(pair.client, keys.client);
    const wire: Buffer[] = [];
    const all: Buffer[] = [];
    pair.server.on('data', (chunk: Buffer) => {
      wire.push(chunk);
      all.push(chunk);
    });
    const big = Buffer.alloc(100_000, 0x33);
    const small = Buffer.alloc(100, 0x44);
    // 2,000 small frames (about 250 KiB), a frame with a large attachment, and one more frame.
    for (let i = 1; i <= 2000; i++) client.framed.send({ job: { computeId: 'c7', jobId: i } }, small);
    client.framed.send({ job: { computeId: 'c7', jobId: 2001 } }, big);
    client.framed.send({ jobAck: { jobIds: [7] } });
    const decoder = protectedDecoder(keys.node);
    const frames: DecodedFrame[] = [];
    await vi.waitFor(() => {
      frames.push(...decoder.push(Buffer.concat(wire.splice(0))));
      expect(frames).toHaveLength(2002);
    });
    expect(frames.map((frame) => Number(dispy.Frame.decode(frame.message).job?.jobId ?? 0))).toEqual([
      ...Array.from({ length: 2001 }, (_, i) => i + 1),
      0,
    ]);
    expect(Buffer.concat(frames[2000]!.attachment!)).toEqual(big);

    // The records on the wire: every body at most RECORD_BYTES (and its tag), only the one before the large attachment has one after it.
    const records: FrameHeader[] = [];
    const bytes = Buffer.concat(all);
    for (let at = 0; at < bytes.length;) {
      const header: FrameHeader = { messageBytes: -1, attachmentBytes: -1 };
      at += readFrameHeader(bytes, at, bytes.length, Infinity, header);
      records.push(header);
      at += header.messageBytes + Math.max(header.attachmentBytes, 0);
    }
    expect(records.length).toBeGreaterThanOrEqual(5);
    expect(records.length).toBeLessThan(10);
    for (const record of records) expect(record.messageBytes).toBeLessThanOrEqual(RECORD_BYTES + TAG_BYTES);
    expect(records.filter((record) => record.attachmentBytes >= 0).map((record) => record.attachmentBytes)).toEqual([
      big.length + TAG_BYTES,
    ]);
    expect(records.at(-1)!.attachmentBytes).toBe(-1);
    client.framed.destroy();
    pair.server.destroy();
  });
});
