import { FrameError } from '../errors/frame-error.js';

/** Bytes of the big-endian unsigned length that precedes every frame. */
export const FRAME_HEADER_BYTES = 4;

/** Bytes of the header of a frame with an attachment: its message's length, then the attachment's. */
export const ATTACHED_FRAME_HEADER_BYTES = 8;

/** Default largest frame accepted: 64 MiB. Files and large values stream in smaller chunks. */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** Largest message one header can describe: its high bit says whether an attachment follows. */
export const MAX_MESSAGE_BYTES = 0x7fffffff;

/** The high bit of a frame's first length word: an attachment follows the message. */
export const ATTACHMENT_FLAG = 0x80000000;

/**
 * One frame off the wire: its protobuf message and, for frames that carry bulk data (file
 * chunks, job arguments), the raw bytes that followed it. The attachment comes as the pieces of
 * the socket reads it arrived in, never copied into one buffer: the receiver hashes and writes
 * them, or passes them on, piece by piece.
 */
export interface DecodedFrame {
  message: Buffer;
  attachment?: Buffer[];
}

/**
 * Splits a byte stream into frames. A frame is a 4-byte big-endian length, then that many bytes
 * of message. When the length's high bit is set, a second 4-byte length follows it, and after
 * the message come that many bytes of attachment: bulk data travels beside its message instead
 * of inside it, so neither side copies it to build or parse the message.
 *
 * Chunks are queued as they arrive and only copied when one message spans several of them, so a
 * stream of small frames costs no concatenation per read. The size limit (message and
 * attachment together) is checked the moment a header is complete, before any of the frame's
 * body is buffered.
 */
export class FrameDecoder {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  /** Length of the message of the frame being read; -1 while its header is incomplete. */
  private messageBytes = -1;
  /** Length of its attachment; -1 when it has none. */
  private attachmentBytes = -1;
  private message: Buffer | undefined;

  constructor(private readonly maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {}

  /** Bytes received but not yet returned as part of a frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Adds a chunk and returns every frame it completes. Throws FrameError on an oversized header. */
  push(chunk: Buffer): DecodedFrame[] {
    const frames: DecodedFrame[] = [];
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    for (;;) {
      if (this.messageBytes < 0 && !this.readHeader()) break;
      if (this.message === undefined) {
        if (this.buffered < this.messageBytes) break;
        this.message = this.take(this.messageBytes);
      }
      if (this.attachmentBytes < 0) {
        frames.push({ message: this.message });
      } else {
        if (this.buffered < this.attachmentBytes) break;
        frames.push({ message: this.message, attachment: this.takePieces(this.attachmentBytes) });
      }
      this.messageBytes = -1;
      this.attachmentBytes = -1;
      this.message = undefined;
    }
    return frames;
  }

  /** Consumes a complete header, if there is one, and checks the frame's size against the limit. */
  private readHeader(): boolean {
    if (this.buffered < FRAME_HEADER_BYTES) return false;
    const first = this.peekUInt32(0);
    const attached = first >= ATTACHMENT_FLAG;
    if (attached && this.buffered < ATTACHED_FRAME_HEADER_BYTES) return false;
    const messageBytes = attached ? first - ATTACHMENT_FLAG : first;
    const attachmentBytes = attached ? this.peekUInt32(FRAME_HEADER_BYTES) : -1;
    const size = messageBytes + Math.max(attachmentBytes, 0);
    if (size > this.maxFrameBytes) throw FrameError.tooLarge(size, this.maxFrameBytes);
    this.take(attached ? ATTACHED_FRAME_HEADER_BYTES : FRAME_HEADER_BYTES);
    this.messageBytes = messageBytes;
    this.attachmentBytes = attachmentBytes;
    return true;
  }

  /** The big-endian uint32 `offset` bytes into the queue (which holds at least offset + 4). */
  private peekUInt32(offset: number): number {
    const first = this.chunks[0]!;
    if (first.length >= offset + 4) return first.readUInt32BE(offset);
    let value = 0;
    let index = 0;
    let at = offset;
    for (let i = 0; i < 4; i++) {
      while (at >= this.chunks[index]!.length) at -= this.chunks[index++]!.length;
      value = value * 256 + this.chunks[index]![at++]!;
    }
    return value;
  }

  /** Removes `n` bytes from the front of the queue; copies only when they span chunks. */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) {
      this.buffered -= n;
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    return Buffer.concat(this.takePieces(n), n);
  }

  /** Removes `n` bytes from the front of the queue as views of the chunks they are in. */
  private takePieces(n: number): Buffer[] {
    this.buffered -= n;
    const pieces: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const head = this.chunks[0]!;
      if (head.length <= left) {
        pieces.push(head);
        this.chunks.shift();
        left -= head.length;
      } else {
        pieces.push(head.subarray(0, left));
        this.chunks[0] = head.subarray(left);
        left = 0;
      }
    }
    return pieces;
  }
}

/**
 * The header of a frame: its message's length, and its attachment's when it has one (the
 * message's length then has its high bit set).
 */
export function frameHeader(messageBytes: number, attachmentBytes?: number): Buffer {
  if (messageBytes > MAX_MESSAGE_BYTES) throw new RangeError(`a frame's message may have at most ${MAX_MESSAGE_BYTES} bytes`);
  if (attachmentBytes === undefined) {
    const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    header.writeUInt32BE(messageBytes, 0);
    return header;
  }
  const header = Buffer.allocUnsafe(ATTACHED_FRAME_HEADER_BYTES);
  header.writeUInt32BE(ATTACHMENT_FLAG + messageBytes, 0);
  header.writeUInt32BE(attachmentBytes, FRAME_HEADER_BYTES);
  return header;
}
