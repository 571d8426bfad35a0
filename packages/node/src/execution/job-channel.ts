/*
 * The job channel: a socket pair between the node process and each worker (the worker's fd 4)
 * that carries its jobs, and drops of jobs, in order. A job's encoded arguments follow its
 * message as the frame's attachment, in the pieces they arrived from the client: the node passes
 * them on without copying or re-encoding them, which the IPC channel would do (megabyte arguments
 * cost more there than on the wire). Messages are small JSON objects (a job's id and per-job
 * definitions), which JSON encodes several times faster than V8's serializer.
 */
import type { Socket } from 'node:net';
import net from 'node:net';
import { GATHER_BELOW_BYTES, MAX_JOB_FRAME_BYTES, frameHeader, readFrameHeader, type FrameHeader } from '@dispy/protocol/codec';
import type { JobChannelMessage } from './worker-messages.js';

/**
 * Largest frame a worker reads (header, message and arguments). A frame carries what one `Job`
 * frame from the client brought, whose limit is MAX_JOB_FRAME_BYTES: its arguments as they came,
 * and its per-job definitions as JSON, which escapes some characters. Twice that bounds both (a
 * definition would have to be mostly control characters to need more), and keeps a corrupt
 * length from making the worker allocate gigabytes.
 */
export const JOB_CHANNEL_MAX_FRAME_BYTES = 2 * MAX_JOB_FRAME_BYTES;

/** The worker's file descriptor of its end (0–2 are stdio, 3 is IPC). */
export const JOB_CHANNEL_FD = 4;

/** The node's end: writes jobs and drops. */
export class JobChannelWriter {
  constructor(private readonly socket: Socket) {
    // A write after the worker died fails here and is handled by its 'exit'.
    socket.on('error', () => undefined);
  }

  /**
   * Sends messages together, in one system call. Headers, messages and small arguments are
   * gathered into one buffer (a burst of tiny jobs costs one write); pieces of large arguments
   * are written as they are. `args` must not change afterwards.
   */
  send(messages: readonly { message: JobChannelMessage; args?: readonly Uint8Array[] }[]): void {
    if (this.socket.destroyed) return;
    let small: Uint8Array[] = [];
    const flushSmall = (): void => {
      if (small.length > 0) this.socket.write(small.length === 1 ? small[0]! : Buffer.concat(small));
      small = [];
    };
    this.socket.cork();
    for (const { message, args } of messages) {
      const bytes = Buffer.from(JSON.stringify(message));
      let length = 0;
      for (const piece of args ?? []) length += piece.length;
      small.push(args ? frameHeader(bytes.length, length) : frameHeader(bytes.length), bytes);
      for (const piece of args ?? []) {
        if (piece.length < GATHER_BELOW_BYTES) {
          small.push(piece);
        } else {
          flushSmall();
          this.socket.write(piece);
        }
      }
    }
    flushSmall();
    this.socket.uncork();
  }
}

/** Bytes the worker reads headers and messages into (a job's arguments go to a buffer of their own). */
const SCRATCH_BYTES = 64 * 1024;

/**
 * The worker's end: calls `onMessage` for each message, with a job's arguments in one buffer.
 *
 * Reads go straight into where the bytes end up: headers and messages into a scratch buffer that
 * is reused, and a job's arguments, once their length is known, into a buffer of exactly that
 * size, which the kernel fills directly. Megabyte arguments are thus copied once, from the
 * socket into the buffer the job decodes from, and not gathered from many reads.
 */
export function readJobChannel(onMessage: (message: JobChannelMessage, args: Uint8Array) => void, fd = JOB_CHANNEL_FD): Socket {
  const reader = new JobChannelReader(onMessage);
  // Node takes `onread` in the constructor too (it is documented for connect() in Node 20's types).
  const options: net.SocketConstructorOpts & { onread: net.OnReadOpts } = {
    fd,
    readable: true,
    writable: false,
    onread: {
      buffer: () => reader.nextReadBuffer(),
      callback: (bytes: number) => {
        try {
          reader.received(bytes);
          return true;
        } catch (error) {
          // A frame over the limit, or a message that is not JSON: the stream cannot be read on.
          socket.destroy(error as Error);
          return false;
        }
      },
    },
  };
  const socket = new net.Socket(options);
  return socket;
}

/**
 * Parses the job channel's frames from reads made into the buffers it hands out
 * (`nextReadBuffer`, then `received(bytes)` with how many bytes the read put there). Frames have
 * the header of the TCP connections' frames (readFrameHeader); one larger than `maxFrameBytes`
 * is refused from its header, before anything is allocated for it.
 */
export class JobChannelReader {
  /** Grows when a message (per-job definitions can be long) does not fit. */
  private scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  /** Bytes at the start of scratch not parsed yet. */
  private pending = 0;
  /** The job whose arguments are being read, and the buffer they are read into. */
  private waiting?: { message: JobChannelMessage; args: Buffer; filled: number };
  private readonly header: FrameHeader = { messageBytes: -1, attachmentBytes: -1 };

  constructor(
    private readonly onMessage: (message: JobChannelMessage, args: Uint8Array) => void,
    private readonly maxFrameBytes = JOB_CHANNEL_MAX_FRAME_BYTES,
  ) {}

  nextReadBuffer(): Uint8Array {
    if (this.waiting) return this.waiting.args.subarray(this.waiting.filled);
    return this.scratch.subarray(this.pending);
  }

  /** Takes the bytes a read put into the last buffer handed out. Throws FrameError on a frame over the limit. */
  received(bytes: number): void {
    if (this.waiting) {
      this.waiting.filled += bytes;
      this.deliverIfComplete();
    } else {
      this.pending += bytes;
      this.parse();
    }
  }

  /** Handles every complete frame in scratch, then moves what is left of it to its start. */
  private parse(): void {
    let at = 0;
    while (this.waiting === undefined) {
      const headerBytes = readFrameHeader(this.scratch, at, this.pending, this.maxFrameBytes, this.header);
      if (headerBytes === 0) break;
      const { messageBytes, attachmentBytes } = this.header;
      if (this.pending - at < headerBytes + messageBytes) {
        this.makeRoom(headerBytes + messageBytes);
        break;
      }
      const body = at + headerBytes;
      const message = JSON.parse(this.scratch.toString('utf8', body, body + messageBytes)) as JobChannelMessage;
      at = body + messageBytes;
      if (attachmentBytes < 0) {
        this.onMessage(message, EMPTY);
        continue;
      }
      // The arguments' first bytes may be in scratch already; the rest is read into place.
      const args = Buffer.allocUnsafe(attachmentBytes);
      const copied = this.scratch.copy(args, 0, at, Math.min(this.pending, at + attachmentBytes));
      at += copied;
      this.waiting = { message, args, filled: copied };
      this.deliverIfComplete();
    }
    this.scratch.copyWithin(0, at, this.pending);
    this.pending -= at;
  }

  /** Makes scratch big enough for a frame of `frameBytes` (header and message). */
  private makeRoom(frameBytes: number): void {
    if (frameBytes <= this.scratch.length) return;
    const bigger = Buffer.allocUnsafe(frameBytes);
    this.scratch.copy(bigger, 0, 0, this.pending);
    this.scratch = bigger;
  }

  private deliverIfComplete(): void {
    const waiting = this.waiting;
    if (!waiting || waiting.filled < waiting.args.length) return;
    this.waiting = undefined;
    this.onMessage(waiting.message, waiting.args);
  }
}

const EMPTY = new Uint8Array(0);
