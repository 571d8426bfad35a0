import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { dispy } from '../schema/generated.js';
import { FrameError } from '../errors/frame-error.js';
import { frameHeader } from './frame-decoder.js';
import { FramedSocket, type Frame, type FramedSocketOptions } from './framed-socket.js';

/*
 * Every test here runs over a real TCP connection on the loopback interface: one FramedSocket on
 * the accepted (server) side, one on the connecting (client) side.
 */

const servers: Server[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(
    servers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
  );
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
}

function frame(socket: Socket, options: Partial<Omit<FramedSocketOptions, 'onClose'>> = {}): Side {
  const frames: Frame[] = [];
  const attachments: Array<Buffer | undefined> = [];
  const events: string[] = [];
  let resolveClosed!: (error: Error | undefined) => void;
  const closed = new Promise<Error | undefined>((resolve) => (resolveClosed = resolve));
  const framed = new FramedSocket(socket, {
    maxFrameBytes: options.maxFrameBytes,
    onFrame: (received, attachment) => {
      frames.push(received);
      attachments.push(attachment && Buffer.concat(attachment));
      events.push(`frame:${received.kind}`);
      options.onFrame?.(received);
    },
    onClose: (error) => {
      events.push('close');
      resolveClosed(error);
    },
  });
  return { framed, frames, attachments, events, closed };
}

async function framedPair(
  serverOptions: Partial<Omit<FramedSocketOptions, 'onClose'>> = {},
): Promise<{ client: Side; server: Side }> {
  const pair = await socketPair();
  return { client: frame(pair.client), server: frame(pair.server, serverOptions) };
}

/** Resolves once `predicate` holds, polling briefly; fails the test with `what` otherwise. */
async function until(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
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
    await until(() => server.frames.length >= 1000, '1000 frames');
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
    const { client, server } = await framedPair();
    client.framed.send({ hello: { version: 1, name: 'from-client' } });
    server.framed.send({ authResult: { ok: true, reason: 'from-server' } });
    await until(() => server.frames.length === 1 && client.frames.length === 1, 'one frame each way');
    expect(server.frames[0]!.hello?.name).toBe('from-client');
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
    const { client, server } = await framedPair({ maxFrameBytes: 1024 });
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
    const { client, server } = await framedPair({ maxFrameBytes: 1024 });
    // A frame whose message encodes to exactly 1024 bytes.
    let size = 1024 - 16;
    const frameOfSize = (n: number) => ({ fileChunk: { transferId: 1, path: 'p'.repeat(n) } });
    while (dispy.Frame.encode(frameOfSize(size)).finish().length < 1024) size++;
    expect(dispy.Frame.encode(frameOfSize(size)).finish().length).toBe(1024);

    client.framed.send(frameOfSize(size));
    await until(() => server.frames.length === 1, 'the 1024-byte frame');
    expect(server.frames[0]!.fileChunk?.path).toHaveLength(size);
    expect(server.framed.isClosed).toBe(false);

    expect(dispy.Frame.encode(frameOfSize(size + 1)).finish().length).toBe(1025);
    client.framed.send(frameOfSize(size + 1)); // one byte over
    const serverError = await server.closed;
    expect((serverError as FrameError).code).toBe('DISPY_ERR_FRAME_TOO_LARGE');
    expect(serverError!.message).toContain('frame of 1025 bytes');
  });

  it('counts an attachment toward maxFrameBytes, and sends one given in pieces as one', async () => {
    const { client, server } = await framedPair({ maxFrameBytes: 1024 });
    const message = { fileChunk: { transferId: 3 } };
    const messageBytes = dispy.Frame.encode(message).finish().length;
    const fill = Buffer.alloc(1024 - messageBytes, 9);
    client.framed.send(message, [fill.subarray(0, 100), Buffer.alloc(0), fill.subarray(100)]);
    await until(() => server.frames.length === 1, 'the frame with a 1024-byte total');
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

    // Let the kernel buffers fill up; the paused peer reads nothing, so the writer cannot drain.
    let drained = false;
    const draining = client.framed.drain().then(() => {
      drained = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(drained).toBe(false);
    expect(server.frames).toHaveLength(0);

    server.framed.socket.resume();
    await draining;
    expect(drained).toBe(true);
    expect(client.framed.socket.writableNeedDrain).toBe(false);
    await expect(client.framed.drain()).resolves.toBeUndefined();

    await until(() => server.frames.length === count, `${count} file chunks`, 20_000);
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
    await until(() => server.frames.length === 40, '40 chunks');
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
