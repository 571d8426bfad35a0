import type { Socket } from 'node:net';
import { dispy } from '../schema/schema.js';
import { DispyError } from '../errors/dispy-error.js';
import { ErrorCode } from '../errors/error-codes.js';
import { FrameError } from '../errors/frame-error.js';
import { FrameDecoder } from './frame-decoder.js';
import { GATHER_BELOW_BYTES, frameHeader } from './frame-header.js';
import { SESSION_LIMITS, type FrameLimits } from './frame-limits.js';

export type Frame = dispy.Frame;
export type FrameInit = dispy.IFrame;

/**
 * Characters of an error's message sent to the peer when a connection is torn down: at most 3
 * bytes each in UTF-8, so the `Error` frame fits in the 1 KiB a peer accepts before
 * authentication (HANDSHAKE_LIMITS).
 */
const MAX_ERROR_MESSAGE_CHARS = 300;

/**
 * Bytes a connection reads and drops after it has refused a frame, while its `Error` frame goes
 * out, before it hangs up at once: a peer that keeps sending is not listening.
 */
const DISCARD_AFTER_CLOSE_BYTES = 64 * 1024;

/** How long a peer has to hang up after this side ended the connection (or refused a frame). */
const END_GRACE_MS = 1000;

/** Bulk bytes sent after a frame's message (see FrameDecoder): one buffer or several pieces. */
export type Attachment = Uint8Array | readonly Uint8Array[];

/** The byte length of an attachment. */
export function attachmentBytes(attachment: Attachment): number {
  if (attachment instanceof Uint8Array) return attachment.length;
  let total = 0;
  for (const piece of attachment) total += piece.length;
  return total;
}

export interface FramedSocketOptions {
  /**
   * What the connection accepts from its peer (default SESSION_LIMITS). A server's connection
   * starts with HANDSHAKE_LIMITS and calls `setLimits(SESSION_LIMITS)` once its peer has
   * authenticated.
   */
  limits?: FrameLimits;
  /** Called for each decoded frame, in order, with its attachment if it has one. */
  onFrame: (frame: Frame, attachment?: Buffer[]) => void;
  /** Called once when the connection is gone; `error` says why when it was not a clean end. */
  onClose: (error?: Error) => void;
}

/**
 * A persistent, length-delimited protobuf channel over a TCP or TLS socket.
 *
 * Frames written in the same tick are corked together into one write, so a burst of small
 * messages (thousands of jobs) costs a few syscalls. `send` reports backpressure as
 * `socket.write` does; `drain()` waits for it to clear.
 */
export class FramedSocket {
  private readonly decoder: FrameDecoder;
  private corked = false;
  private closed = false;
  /** Bytes read and dropped since the connection closed. */
  private discarded = 0;
  private readonly onClose: (error?: Error) => void;
  /** Cuts the connection off if the peer does not hang up after our end (destroyLater). */
  private endTimer?: NodeJS.Timeout;

  constructor(
    readonly socket: Socket,
    options: FramedSocketOptions,
  ) {
    this.decoder = new FrameDecoder(options.limits ?? SESSION_LIMITS);
    this.onClose = options.onClose;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (this.closed) {
        this.discarded += chunk.length;
        if (this.discarded > DISCARD_AFTER_CLOSE_BYTES) socket.destroy();
        return;
      }
      this.decoder.add(chunk);
      // One frame at a time: a handler that changes the limits (setLimits) changes them for the
      // next frame, even one that arrived in the same chunk.
      for (;;) {
        let frame: Frame;
        let attachment: Buffer[] | undefined;
        try {
          const decoded = this.decoder.next();
          if (decoded === undefined) return;
          attachment = decoded.attachment;
          frame = decodeFrame(decoded.message);
        } catch (error) {
          this.destroy(error as Error);
          return;
        }
        try {
          options.onFrame(frame, attachment);
        } catch (error) {
          this.destroy(error as Error);
          return;
        }
        if (this.closed) return;
      }
    });
    socket.on('error', (error) => this.finish(describeSocketError(error)));
    socket.on('close', () => this.finish());
  }

  /** Bytes queued on the socket and not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** What the connection accepts from its peer now. */
  get limits(): FrameLimits {
    return this.decoder.currentLimits;
  }

  /**
   * Judges the peer's frames by `limits` from the next frame on (including frames that arrived
   * in the same read as the one being handled): call it from `onFrame` when the peer has
   * authenticated, with SESSION_LIMITS.
   */
  setLimits(limits: FrameLimits): void {
    this.decoder.setLimits(limits);
  }

  /**
   * Queues a frame, and the attachment that follows it if any (written as it is, not copied:
   * the caller must not change it afterwards). Returns false when the socket's buffer is full
   * (see `drain`).
   */
  send(frame: FrameInit, attachment?: Attachment): boolean {
    if (this.closed) return false;
    const payload = dispy.Frame.encode(frame).finish();
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    const pieces = attachment === undefined ? [] : attachment instanceof Uint8Array ? [attachment] : attachment;
    const size = attachment === undefined ? undefined : attachmentBytes(attachment);
    const header = frameHeader(payload.length, size);
    // A small frame goes out as one buffer (a burst of tiny jobs costs one write call each);
    // a large attachment is written as it is, never copied.
    if ((size ?? 0) < GATHER_BELOW_BYTES) return this.socket.write(Buffer.concat([header, payload, ...pieces]));
    let room = this.socket.write(Buffer.concat([header, payload]));
    for (const piece of pieces) {
      if (piece.length > 0) room = this.socket.write(piece) && room;
    }
    return room;
  }

  /** Resolves when the socket can take more data (at once if it can now). */
  async drain(): Promise<void> {
    if (this.closed || !this.socket.writableNeedDrain) return;
    // Both listeners go whichever fires (a transfer calls this once per chunk). A socket error is
    // always followed by 'close' and reported through onClose, so it ends the wait, not rejects.
    const socket = this.socket;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
  }

  /**
   * Sends a last frame (if any), then ends the connection gracefully: the connection counts as
   * closed at once (onClose runs, and nothing more the peer sends is decoded), and a peer that
   * does not hang up in turn is cut off after a second.
   */
  end(frame?: FrameInit): void {
    if (this.closed) return;
    if (frame) this.send(frame);
    this.socket.end();
    this.destroyLater();
    this.finish();
  }

  /** Tears the connection down at once. */
  destroy(error?: Error): void {
    if (error && !this.closed && this.socket.writable) {
      // Tell the peer why before hanging up; best effort.
      const code = DispyError.isInstance(error) ? error.code : ErrorCode.PROTOCOL;
      const message =
        error.message.length > MAX_ERROR_MESSAGE_CHARS ? `${error.message.slice(0, MAX_ERROR_MESSAGE_CHARS - 1)}…` : error.message;
      const payload = dispy.Frame.encode({ error: { code, message } }).finish();
      this.socket.write(frameHeader(payload.length));
      this.socket.end(payload);
      this.destroyLater();
      this.finish(error);
      return;
    }
    clearTimeout(this.endTimer);
    this.socket.destroy();
    this.finish(error);
  }

  /** If the peer does not hang up in turn after our end, do not wait for it. */
  private destroyLater(): void {
    this.endTimer = setTimeout(() => this.socket.destroy(), END_GRACE_MS).unref();
    this.socket.once('close', () => clearTimeout(this.endTimer));
  }

  private finish(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(error);
  }
}

/**
 * An error of the socket, as the connection reports it. On a TLS connection (secured before
 * FramedSocket takes it), an error of OpenSSL is a record that failed authentication here, or an
 * alert from the peer that one failed there: altered, injected or replayed on the way.
 */
function describeSocketError(error: Error): Error {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (!code.startsWith('ERR_SSL_')) return error;
  return new FrameError(
    ErrorCode.AUTH,
    `a TLS record failed authentication (${code}): altered, injected or replayed on the way; the connection is not trusted`,
    { cause: error },
  );
}

/** A frame's message, decoded; FrameDecoder has made sure it has one kind and bounded lists. */
function decodeFrame(message: Buffer): Frame {
  try {
    return dispy.Frame.decode(message);
  } catch (error) {
    throw FrameError.malformed((error as Error).message, error);
  }
}
