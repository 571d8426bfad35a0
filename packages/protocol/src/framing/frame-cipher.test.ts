import { once } from 'node:events';
import { Server, connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { dispy } from '../schema/generated.js';
import { ErrorCode } from '../errors/error-codes.js';
import { channelKeys, newNonce, type ChannelKeys } from '../auth/hmac.js';
import { FrameOpener, FrameSealer, TAG_BYTES } from './frame-cipher.js';
import { FrameDecoder, type DecodedFrame } from './frame-decoder.js';
import { frameHeader } from './frame-header.js';
import { SESSION_LIMITS } from './frame-limits.js';
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

/** The bytes of one sealed frame, as FramedSocket sends them. */
function sealFrame(sealer: FrameSealer, frame: dispy.IFrame, attachment?: Buffer): Buffer {
  const payload = dispy.Frame.encode(frame).finish();
  const header = frameHeader(payload.length + TAG_BYTES, attachment === undefined ? undefined : attachment.length + TAG_BYTES);
  return Buffer.concat(sealer.seal(header, payload, attachment === undefined ? undefined : [attachment]));
}

function protectedDecoder(keys: ChannelKeys): FrameDecoder {
  const decoder = new FrameDecoder(SESSION_LIMITS);
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
      sealFrame(sealer, JOB, Buffer.alloc(0)),
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
});
