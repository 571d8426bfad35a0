import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { dispy } from '../schema/schema.js';
import { FrameError } from '../errors/frame-error.js';
import { ErrorCode } from '../errors/error-codes.js';
import { frameHeader } from './frame-header.js';
import { HANDSHAKE_LIMITS, MAX_REPEATED_ENTRIES, SESSION_LIMITS, type FrameLimits } from './frame-limits.js';
import { FramedSocket, type Frame, type FramedSocketOptions } from './framed-socket.js';

/*
 * Every test here runs over a real TCP connection on the loopback interface: one FramedSocket on
 * the accepted (server) side, one on the connecting (client) side.
 */

const servers: Server[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
});

/** A connected pair of raw sockets over 127.0.0.1. */
async function socketPair(): Promise<{ client: Socket; server: Socket }> {
  const listener = createServer();
  servers.push(listener);
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const { port } = listener.address() as { port: number };
  const accepted = once(listener, 'connection') as Promise<[Socket]>;
  const client = connect(port, '127.0.0.1');
  sockets.push(client);
  await once(client, 'connect');
  const [server] = await accepted;
  sockets.push(server);
  return { client, server };
}

interface Side {
  framed: FramedSocket;
  frames: Frame[];
  /** Each frame's attachment, in one buffer (undefined: it had none). */
  attachments: Array<Buffer | undefined>;
  /** What happened, in order: `frame:<kind>` and `close` entries. */
  events: string[];
  closed: Promise<Error | undefined>;
  /** Resolves once `count` frames have arrived (at once if they have). */
  received(count: number): Promise<void>;
}

type SideOptions = Partial<Omit<FramedSocketOptions, 'onClose' | 'onFrame'>> & { onFrame?: (frame: Frame) => void };

function frame(socket: Socket, options: SideOptions = {}): Side {
  const frames: Frame[] = [];
  const attachments: Array<Buffer | undefined> = [];
  const events: string[] = [];
  let resolveClosed!: (error: Error | undefined) => void;
  const closed = new Promise<Error | undefined>((resolve) => (resolveClosed = resolve));
  /** Waiters of `received`, woken as frames arrive. */
  const waiters = new Set<{ count: number; resolve: () => void }>();
  const framed = new FramedSocket(socket, {
    limits: options.limits,
    onFrame: (received, attachment) => {
      frames.push(received);
      attachments.push(attachment && Buffer.concat(attachment));
      events.push(`frame:${received.kind}`);
      for (const waiter of waiters) {
        if (frames.length < waiter.count) continue;
        waiters.delete(waiter);
        waiter.resolve();
      }
      options.onFrame?.(received);
    },
    onClose: (error) => {
      events.push('close');
      resolveClosed(error);
    },
  });
  return {
    framed,
    frames,
    attachments,
    events,
    closed,
    received: (count) => (frames.length >= count ? Promise.resolve() : new Promise((resolve) => waiters.add({ count, resolve }))),
  };
}

async function framedPair(serverOptions: SideOptions = {}, clientOptions: SideOptions = {}): Promise<{ client: Side; server: Side }> {
  const pair = await socketPair();
  return { client: frame(pair.client, clientOptions), server: frame(pair.server, serverOptions) };
}

/** SESSION_LIMITS with a smaller total. */
function sessionOf(maxFrameBytes: number): FrameLimits {
  return { ...SESSION_LIMITS, maxFrameBytes };
}

function rawFrame(body: Uint8Array): Buffer {
  return Buffer.concat([frameHeader(body.length), body]);
}

describe('FramedSocket over loopback TCP', () => {
  it('delivers 1000 Job frames sent in one tick, decoded and in order, each with its attachment', async () => {
    const { client, server } = await framedPair();
    for (let i = 0; i < 1000; i++) {
      expect(client.framed.isClosed).toBe(false);
      client.framed.send({ job: { computeId: 'c-1', jobId: i } }, Buffer.from([i & 0xff, i >> 8]));
    }
    await server.received(1000);
    expect(server.frames).toHaveLength(1000);
    server.frames.forEach((received, i) => {
      expect(received.kind).toBe('job');
      expect(received.job?.computeId).toBe('c-1');
      expect(Number(received.job?.jobId)).toBe(i);
      expect([...server.attachments[i]!]).toEqual([i & 0xff, i >> 8]);
    });
    expect(server.framed.isClosed).toBe(false);
  });

  it('carries frames both ways on the same connection', async () => {
    const { client, server } = await framedPair({ limits: HANDSHAKE_LIMITS }, { limits: HANDSHAKE_LIMITS });
    client.framed.send({ auth: { version: 1, clientName: 'from-client' } });
    server.framed.send({ authResult: { ok: true, reason: 'from-server' } });
    await Promise.all([server.received(1), client.received(1)]);
    expect([server.frames.length, client.frames.length]).toEqual([1, 1]);
    expect(server.frames[0]!.auth?.clientName).toBe('from-client');
    expect(client.frames[0]!.authResult?.ok).toBe(true);
    expect(client.frames[0]!.authResult?.reason).toBe('from-server');
  });

  it('end(frame) delivers the last frame, then both sides close without an error', async () => {
    const { client, server } = await framedPair();
    client.framed.send({ pulse: { busy: 1 } });
    client.framed.end({ close: { computeId: 'c-9', terminatePending: true } });
    await expect(server.closed).resolves.toBeUndefined();
    await expect(client.closed).resolves.toBeUndefined();
    expect(server.events).toEqual(['frame:pulse', 'frame:close', 'close']);
    expect(server.frames[1]!.close?.computeId).toBe('c-9');
    expect(client.framed.isClosed).toBe(true);
    expect(client.framed.send({ pulse: {} })).toBe(false);
  });

  it('closes on a malformed frame with DISPY_ERR_FRAME_MALFORMED and tells the sender why first', async () => {
    const { client, server } = await framedPair();
    // A valid length header, then a body that is not protobuf: field 1 with the invalid wire type 7.
    client.framed.socket.write(rawFrame(Buffer.from([0x0f, 0xff, 0xff, 0xff])));

    const serverError = await server.closed;
    expect(serverError).toBeInstanceOf(FrameError);
    expect((serverError as FrameError).code).toBe('DISPY_ERR_FRAME_MALFORMED');
    expect(serverError!.message).toMatch(/^malformed frame: /);
    expect(server.frames).toEqual([]);

    await expect(client.closed).resolves.toBeUndefined();
    expect(client.events).toEqual(['frame:error', 'close']);
    expect(client.frames[0]!.error?.code).toBe('DISPY_ERR_FRAME_MALFORMED');
    expect(client.frames[0]!.error?.message).toBe(serverError!.message);
  });

  it('closes on a frame of unknown kind (an empty protobuf Frame) as malformed', async () => {
    const { client, server } = await framedPair();
    client.framed.socket.write(frameHeader(0));
    const serverError = await server.closed;
    expect((serverError as FrameError).code).toBe('DISPY_ERR_FRAME_MALFORMED');
    expect(serverError!.message).toContain('unknown kind');
    await client.closed;
    expect(client.events).toEqual(['frame:error', 'close']);
    expect(client.frames[0]!.error?.message).toContain('unknown kind');
  });

  it('delivers the frames before a malformed one and none after it', async () => {
    const { client, server } = await framedPair();
    const good = (n: number): Buffer => rawFrame(Buffer.from([0x52, 0x02, 0x08, n])); // pulse { busy: n }
    client.framed.socket.write(Buffer.concat([good(1), good(2), rawFrame(Buffer.from([0x0f])), good(3)]));
    const serverError = await server.closed;
    expect((serverError as FrameError).code).toBe('DISPY_ERR_FRAME_MALFORMED');
    expect(server.frames.map((received) => received.pulse?.busy)).toEqual([1, 2]);
    expect(server.events).toEqual(['frame:pulse', 'frame:pulse', 'close']);
  });

  it('refuses an oversized header with DISPY_ERR_FRAME_TOO_LARGE without waiting for its body', async () => {
    const { client, server } = await framedPair({ limits: sessionOf(1024) });
    // Only the header: the receiver must not wait for the 1025 body bytes that never come.
    client.framed.socket.write(frameHeader(1025));

    const serverError = await server.closed;
    expect(serverError).toBeInstanceOf(FrameError);
    expect((serverError as FrameError).code).toBe('DISPY_ERR_FRAME_TOO_LARGE');
    expect(serverError!.message).toContain('1025');

    await expect(client.closed).resolves.toBeUndefined();
    expect(client.events).toEqual(['frame:error', 'close']);
    expect(client.frames[0]!.error?.code).toBe('DISPY_ERR_FRAME_TOO_LARGE');
    expect(client.frames[0]!.error?.message).toContain('exceeds the limit of 1024 bytes');
  });

  it('accepts a frame right at maxFrameBytes', async () => {
    const { client, server } = await framedPair({ limits: sessionOf(1024) });
    // A frame whose message encodes to exactly 1024 bytes.
    let size = 1024 - 16;
    const frameOfSize = (n: number) => ({ fileChunk: { transferId: 1, path: 'p'.repeat(n) } });
    while (dispy.Frame.encode(frameOfSize(size)).finish().length < 1024) size++;
    expect(dispy.Frame.encode(frameOfSize(size)).finish().length).toBe(1024);

    client.framed.send(frameOfSize(size));
    await server.received(1);
    expect(server.frames[0]!.fileChunk?.path).toHaveLength(size);
    expect(server.framed.isClosed).toBe(false);

    expect(dispy.Frame.encode(frameOfSize(size + 1)).finish().length).toBe(1025);
    client.framed.send(frameOfSize(size + 1)); // one byte over
    const serverError = await server.closed;
    expect((serverError as FrameError).code).toBe('DISPY_ERR_FRAME_TOO_LARGE');
    expect(serverError!.message).toContain('frame of 1025 bytes');
  });

  it('counts an attachment toward maxFrameBytes, and sends one given in pieces as one', async () => {
    const { client, server } = await framedPair({ limits: sessionOf(1024) });
    const message = { fileChunk: { transferId: 3 } };
    const messageBytes = dispy.Frame.encode(message).finish().length;
    const fill = Buffer.alloc(1024 - messageBytes, 9);
    client.framed.send(message, [fill.subarray(0, 100), Buffer.alloc(0), fill.subarray(100)]);
    await server.received(1);
    expect(server.attachments[0]!.equals(fill)).toBe(true);
    expect(server.framed.isClosed).toBe(false);

    client.framed.send(message, Buffer.alloc(fill.length + 1)); // one byte over
    const serverError = await server.closed;
    expect((serverError as FrameError).code).toBe('DISPY_ERR_FRAME_TOO_LARGE');
    expect(serverError!.message).toContain('frame of 1025 bytes');
  });

  it('closes with the error an onFrame handler throws', async () => {
    const failure = new Error('handler failed');
    const { client, server } = await framedPair({
      onFrame: () => {
        throw failure;
      },
    });
    client.framed.send({ pulse: { busy: 1 } });
    client.framed.send({ pulse: { busy: 2 } });
    await expect(server.closed).resolves.toBe(failure);
    expect(server.frames).toHaveLength(1);
    await client.closed;
    expect(client.frames[0]!.error?.code).toBe('DISPY_ERR_PROTOCOL');
    expect(client.frames[0]!.error?.message).toBe('handler failed');
  });

  it('reports backpressure: send() returns false and drain() resolves only after the peer resumes', async () => {
    const { client, server } = await framedPair();
    server.framed.socket.pause();

    const MiB = 1024 * 1024;
    const count = 64;
    const results: boolean[] = [];
    for (let i = 0; i < count; i++) {
      const data = Buffer.alloc(MiB, i);
      results.push(client.framed.send({ fileChunk: { transferId: 7, offset: i * MiB, last: i === count - 1 } }, data));
    }
    expect(results).toContain(false);
    expect(client.framed.socket.writableNeedDrain).toBe(true);

    // The paused peer reads nothing, and 64 MiB cannot fit in the kernel's buffers (a few MiB), so
    // bytes stay queued on the writer whatever the time: 'drain' cannot come. The event loop goes
    // round once (the writes are attempted) and drain() still waits.
    let drained = false;
    const draining = client.framed.drain().then(() => {
      drained = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(client.framed.socket.writableLength).toBeGreaterThan(0);
    expect(drained).toBe(false);
    expect(server.frames).toHaveLength(0);

    server.framed.socket.resume();
    await draining;
    expect(drained).toBe(true);
    expect(client.framed.socket.writableNeedDrain).toBe(false);
    await expect(client.framed.drain()).resolves.toBeUndefined();

    await server.received(count);
    server.frames.forEach((received, i) => {
      const chunk = received.fileChunk!;
      const data = server.attachments[i]!;
      expect(Number(chunk.offset)).toBe(i * MiB);
      expect(data.length).toBe(MiB);
      expect(data[0]).toBe(i);
      expect(data[MiB - 1]).toBe(i);
      expect(chunk.last).toBe(i === count - 1);
    });
  });

  it('drain() leaves no listeners behind, however often it is awaited', async () => {
    const { client, server } = await framedPair();
    const socket = client.framed.socket;
    const before = { close: socket.listenerCount('close'), error: socket.listenerCount('error'), drain: socket.listenerCount('drain') };
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      let waited = 0;
      for (let i = 0; i < 40; i++) {
        if (!client.framed.send({ fileChunk: { transferId: 1, offset: i } }, Buffer.alloc(256 * 1024, i))) waited++;
        await client.framed.drain();
      }
      expect(waited).toBeGreaterThan(10); // drain() really waited for 'drain' many times
      expect(socket.listenerCount('close')).toBe(before.close);
      expect(socket.listenerCount('error')).toBe(before.error);
      expect(socket.listenerCount('drain')).toBe(before.drain);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
    await server.received(40);
  });

  it('drain() resolves when the connection closes while it waits', async () => {
    const { client, server } = await framedPair();
    server.framed.socket.pause();
    for (let i = 0; i < 32; i++) client.framed.send({ fileChunk: {} }, Buffer.alloc(1024 * 1024));
    expect(client.framed.socket.writableNeedDrain).toBe(true);
    const draining = client.framed.drain();
    server.framed.destroy();
    await expect(draining).resolves.toBeUndefined();
    await client.closed;
    expect(client.framed.isClosed).toBe(true);
  });

  it('drain() resolves at once when nothing is queued', async () => {
    const { client } = await framedPair();
    expect(client.framed.send({ pulse: { busy: 0 } })).toBe(true);
    await client.framed.drain();
    client.framed.destroy();
    await expect(client.closed).resolves.toBeUndefined();
    await expect(client.framed.drain()).resolves.toBeUndefined();
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

/** Resolves when the raw socket has closed (both ends of it are gone). */
function socketClosed(socket: Socket): Promise<void> {
  return socket.destroyed && socket.closed ? Promise.resolve() : once(socket, 'close').then(() => undefined);
}

describe('FramedSocket limits, with the bytes an attacker sends', () => {
  const MiB = 1024 * 1024;
  /** A server side that starts with HANDSHAKE_LIMITS, and a client side of raw bytes. */
  const attacked = (serverOptions: SideOptions = {}) =>
    framedPair({ limits: HANDSHAKE_LIMITS, ...serverOptions }, { limits: HANDSHAKE_LIMITS });

  async function expectRefused(side: { server: Side; client: Side }, code: string, message: string): Promise<void> {
    const serverError = await side.server.closed;
    expect(FrameError.isInstance(serverError)).toBe(true);
    expect((serverError as FrameError).code).toBe(code);
    expect(serverError!.message).toBe(message);
    expect(side.server.frames).toEqual([]);
    // The peer hears why, in an Error frame it accepts before authentication.
    await side.client.received(1);
    expect(side.client.frames[0]!.error).toMatchObject({ code, message });
  }

  it('refuses a 24 MB JobAck of packed zeros before authentication from its header, reading little of it', async () => {
    const side = await attacked();
    const entries = 24_000_000;
    const list = Buffer.concat([Buffer.from([0x0a]), varint(entries)]);
    const body = Buffer.concat([Buffer.from([0x42]), varint(list.length + entries), list]);
    const size = body.length + entries;
    side.client.framed.socket.write(Buffer.concat([frameHeader(size), body, Buffer.alloc(entries)]));

    await expectRefused(side, ErrorCode.FRAME_TOO_LARGE, `frame of ${size} bytes exceeds the limit of 1024 bytes`);
    // The server hangs up after dropping a little more of what keeps coming, never reading the rest.
    await socketClosed(side.server.framed.socket);
    expect(side.server.framed.socket.bytesRead).toBeLessThan(MiB);
  });

  it('refuses a frame claiming a 64 MiB attachment before authentication from its 8-byte header', async () => {
    const side = await attacked();
    side.client.framed.socket.write(frameHeader(20, 64 * MiB));
    await expectRefused(side, ErrorCode.FRAME_TOO_LARGE, `frame of ${20 + 64 * MiB} bytes exceeds the limit of 1024 bytes`);
  });

  it('refuses a small attachment before authentication from its header', async () => {
    const side = await attacked();
    side.client.framed.socket.write(frameHeader(20, 10));
    await expectRefused(side, ErrorCode.PROTOCOL, 'no frame may carry an attachment before authentication');
  });

  it('refuses an Auth frame over 1 KiB', async () => {
    const side = await attacked();
    const auth: dispy.IFrame = { auth: { version: 3, nonce: Buffer.alloc(16), mac: Buffer.alloc(32), clientName: 'n'.repeat(2000) } };
    const size = dispy.Frame.encode(auth).finish().length;
    side.client.framed.send(auth);
    await expectRefused(side, ErrorCode.FRAME_TOO_LARGE, `frame of ${size} bytes exceeds the limit of 1024 bytes`);
  });

  it('refuses a Job frame before authentication on the first byte of its message', async () => {
    const side = await attacked();
    // The header of a 200-byte frame and the Job's tag: the rest never comes.
    side.client.framed.socket.write(Buffer.concat([frameHeader(200), Buffer.from([0x32])]));
    await expectRefused(side, ErrorCode.PROTOCOL, 'job frames are not accepted before authentication');
  });

  it('after setLimits(SESSION_LIMITS) accepts jobs with attachments, from the frame after the switch in the same read', async () => {
    const side = await attacked({
      onFrame: (received) => {
        if (received.kind === 'auth') side.server.framed.setLimits(SESSION_LIMITS);
      },
    });
    expect(side.server.framed.limits).toBe(HANDSHAKE_LIMITS);
    const encode = (init: dispy.IFrame): Buffer => Buffer.from(dispy.Frame.encode(init).finish());
    const job = encode({ job: { computeId: 'c1', jobId: 1 } });
    // One write, so the server reads both frames in one chunk.
    side.client.framed.socket.write(
      Buffer.concat([rawFrame(encode({ auth: { version: 3 } })), frameHeader(job.length, 4), job, Buffer.from('args')]),
    );
    await side.server.received(2);
    expect(side.server.events).toEqual(['frame:auth', 'frame:job']);
    expect(side.server.attachments[1]!.toString()).toBe('args');
    expect(side.server.framed.limits).toBe(SESSION_LIMITS);

    // The same connection now takes a job with arguments of 1 MiB.
    side.client.framed.send({ job: { computeId: 'c1', jobId: 2 } }, Buffer.alloc(MiB, 5));
    await side.server.received(3);
    expect(side.server.attachments[2]!.equals(Buffer.alloc(MiB, 5))).toBe(true);
    expect(side.server.framed.isClosed).toBe(false);
  });

  it('without the switch refuses the job that follows the auth in the same read', async () => {
    const side = await attacked();
    const encode = (init: dispy.IFrame): Buffer => Buffer.from(dispy.Frame.encode(init).finish());
    const job = encode({ job: { computeId: 'c1', jobId: 1 } });
    side.client.framed.socket.write(Buffer.concat([rawFrame(encode({ auth: { version: 3 } })), rawFrame(job)]));
    const serverError = await side.server.closed;
    expect(serverError!.message).toBe('job frames are not accepted before authentication');
    expect(side.server.events).toEqual(['frame:auth', 'close']);
  });

  it('refuses a JobAck with too many entries after authentication, naming the field', async () => {
    const { client, server } = await framedPair();
    client.framed.send({ jobAck: { jobIds: Array.from({ length: MAX_REPEATED_ENTRIES + 1 }, (_, i) => i) } });
    const serverError = await server.closed;
    expect((serverError as FrameError).code).toBe(ErrorCode.FRAME_TOO_LARGE);
    expect(serverError!.message).toBe(`jobAck.jobIds has more than ${MAX_REPEATED_ENTRIES} entries, the limit of one frame`);
    await client.received(1);
    expect(client.frames[0]!.error?.message).toBe(serverError!.message);
  });

  it('leaves no timer behind once the refused peer has hung up in turn', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    try {
      const side = await attacked();
      side.client.framed.socket.write(Buffer.concat([frameHeader(200), Buffer.from([0x32])]));
      await side.server.closed;
      // The client hears the Error frame and the end, and closes; the server sees it close.
      await side.client.closed;
      await socketClosed(side.server.framed.socket);
      expect(side.client.frames.map((received) => received.error?.code)).toEqual([ErrorCode.PROTOCOL]);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('cuts a long error message so that a peer still in its handshake accepts the Error frame', async () => {
    const side = await attacked({
      onFrame: () => {
        throw new Error('\u20ac'.repeat(5000));
      },
    });
    side.client.framed.send({ auth: { version: 3 } });
    await side.server.closed;
    await side.client.received(1);
    expect(side.client.frames[0]!.error?.code).toBe(ErrorCode.PROTOCOL);
    expect(side.client.frames[0]!.error?.message).toBe(`${'\u20ac'.repeat(299)}…`);
  });
});
