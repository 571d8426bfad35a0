import { FrameError } from '../errors/frame-error.js';
import { ErrorCode } from '../errors/error-codes.js';
import { checkFrameMessage } from './check-frame-message.js';
import { ATTACHED_FRAME_HEADER_BYTES, readFrameHeader, type FrameHeader } from './frame-header.js';
import { KIND_BY_FIELD, type FrameKind } from './frame-kinds.js';
import { SESSION_LIMITS, type FrameLimits, type KindLimit } from './frame-limits.js';
import { OVERSIZED_HEAD_BYTES, replaceOversizedJobReply } from './oversized-reply.js';

/**
 * One frame off the wire: its kind, its protobuf message and, for frames that carry bulk data
 * (file chunks, job arguments), the raw bytes that followed it. The attachment comes as the
 * pieces of the socket reads it arrived in, never copied into one buffer: the receiver hashes and
 * writes them, or passes them on, piece by piece.
 */
export interface DecodedFrame {
  kind: FrameKind;
  message: Buffer;
  attachment?: Buffer[];
  /** Set when the frame was too large and skipped (`KindLimit.skipOversized`): `message` stands in for it. */
  oversized?: { bytes: number; limit: number };
}

/**
 * What stands in for a skipped frame of each kind that may be skipped (`KindLimit.skipOversized`),
 * made from the head of its message; undefined when the head does not say enough.
 */
const OVERSIZED_REPLACEMENTS: Partial<Record<FrameKind, (head: Buffer, bytes: number, limit: number) => Buffer | undefined>> = {
  jobReply: replaceOversizedJobReply,
};

/** The largest message a frame header can announce (its length has 31 bits). */
const MAX_ANNOUNCED_BYTES = 0x7fffffff;

/** A frame being skipped: the head of its message, and how much of it is left to drop. */
interface Skipping {
  limit: number;
  head?: Buffer;
  left: number;
}

/** The protobuf wire type of a message field, which every kind is. */
const LENGTH_DELIMITED = 2;

/**
 * Splits a byte stream into frames and judges each against the connection's FrameLimits as early
 * as its bytes allow, so that a peer cannot make the receiver buffer or decode what it will
 * refuse:
 *
 * - the moment the header is complete: the frame's size against `maxFrameBytes`, and whether any
 *   kind may carry an attachment now;
 * - the moment the message's first tag (one or two bytes) has arrived: its kind, which must be
 *   one the limits accept, its size against that kind's limit, and its attachment;
 * - the moment the message is complete, before the attachment and before any protobuf decoding:
 *   that it holds no second kind, and the entries of its repeated fields (`maxRepeated`).
 *
 * A frame is a 4-byte big-endian length, then that many bytes of message. When the length's high
 * bit is set, a second 4-byte length follows it, and after the message come that many bytes of
 * attachment: bulk data travels beside its message instead of inside it, so neither side copies
 * it to build or parse the message.
 *
 * Chunks are queued as they arrive and only copied when one message spans several of them, so a
 * stream of small frames costs no concatenation per read.
 */
export class FrameDecoder {
  private readonly chunks: Buffer[] = [];
  /** Bytes of chunks[0] already consumed. */
  private offset = 0;
  private buffered = 0;
  private limits!: FrameLimits;
  /** The kinds' limits by field number, and whether any kind may carry an attachment. */
  private byField: (KindLimit | undefined)[] = [];
  private attachments = false;
  /** Whether some kind's oversized frames are skipped rather than refused (plain frames only). */
  private skips = false;
  /** The frame under way is too large and being skipped. */
  private skipping: Skipping | undefined;
  /** The header of the frame being read; messageBytes is -1 until it is complete. */
  private readonly header: FrameHeader = { messageBytes: -1, attachmentBytes: -1 };
  /** Its kind; undefined until the message's first tag has been read. */
  private kind: FrameKind | undefined;
  private message: Buffer | undefined;
  /** Where a header split across chunks is gathered. */
  private readonly headerBytes = Buffer.alloc(ATTACHED_FRAME_HEADER_BYTES);

  constructor(limits: FrameLimits = SESSION_LIMITS) {
    this.setLimits(limits);
  }

  /** The limits frames are judged by now. */
  get currentLimits(): FrameLimits {
    return this.limits;
  }

  /**
   * Judges frames by `limits` from now on: from the next frame whose header has not been read
   * yet (a frame already under way keeps the limits it was accepted by).
   */
  setLimits(limits: FrameLimits): void {
    this.limits = limits;
    this.byField = KIND_BY_FIELD.map((kind) => (kind === undefined ? undefined : limits.kinds[kind]));
    this.attachments = this.byField.some((limit) => limit?.attachment === true);
    this.skips = this.byField.some((limit) => limit?.skipOversized === true);
  }

  /** Bytes received but not yet returned as part of a frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Queues a chunk read from the connection; `next()` returns the frames it completes. */
  add(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next complete frame, judged by the limits in force now; undefined when its bytes have not
   * all arrived yet.
   *
   * @throws FrameError `DISPY_ERR_FRAME_TOO_LARGE` when the frame, or its kind's share, or a list
   *   in it, exceeds the limits; `DISPY_ERR_PROTOCOL` when its kind, or its attachment, is not
   *   accepted now; `DISPY_ERR_FRAME_MALFORMED` when it has no known kind or is not well-formed.
   *   The stream cannot be read further after a throw.
   */
  next(): DecodedFrame | undefined {
    const header = this.header;
    if (header.messageBytes < 0 && !this.readHeader()) return undefined;
    if (this.kind === undefined && !this.readKind()) return undefined;
    if (this.skipping !== undefined) return this.nextSkipped();
    if (this.message === undefined) {
      if (this.buffered < header.messageBytes) return undefined;
      this.message = this.take(header.messageBytes);
      checkFrameMessage(this.message, this.kind!, this.limits.maxRepeated);
    }
    let attachment: Buffer[] | undefined;
    if (header.attachmentBytes >= 0) {
      if (this.buffered < header.attachmentBytes) return undefined;
      attachment = this.takePieces(header.attachmentBytes);
    }
    const frame: DecodedFrame = { kind: this.kind!, message: this.message, attachment };
    header.messageBytes = -1;
    this.kind = undefined;
    this.message = undefined;
    return frame;
  }

  /**
   * Queues a chunk and returns every frame it completes, all judged by the limits in force now.
   * (A connection whose limits change between frames reads them one at a time with `next()`.)
   */
  push(chunk: Buffer): DecodedFrame[] {
    this.add(chunk);
    const frames: DecodedFrame[] = [];
    for (let frame = this.next(); frame !== undefined; frame = this.next()) frames.push(frame);
    return frames;
  }

  /**
   * Reads on through a frame too large to take: its head (to make what stands in for it), then
   * drops the rest as it arrives; at its end, hands over what stands in for it.
   * @throws FrameError `DISPY_ERR_FRAME_TOO_LARGE` when its head does not say enough to replace it
   */
  private nextSkipped(): DecodedFrame | undefined {
    const skipping = this.skipping!;
    const kind = this.kind!;
    const size = this.header.messageBytes;
    if (skipping.head === undefined) {
      const headBytes = Math.min(OVERSIZED_HEAD_BYTES, size);
      if (this.buffered < headBytes) return undefined;
      skipping.head = Buffer.from(this.take(headBytes));
      skipping.left = size - headBytes;
    }
    const dropped = Math.min(skipping.left, this.buffered);
    this.skip(dropped);
    skipping.left -= dropped;
    if (skipping.left > 0) return undefined;
    const message = OVERSIZED_REPLACEMENTS[kind]?.(skipping.head, size, skipping.limit);
    if (message === undefined) throw FrameError.tooLarge(size, skipping.limit, `${kind} frame`);
    this.skipping = undefined;
    this.header.messageBytes = -1;
    this.kind = undefined;
    return { kind, message, oversized: { bytes: size, limit: skipping.limit } };
  }

  /** Consumes a complete header, if there is one, and checks it against the limits. */
  private readHeader(): boolean {
    const first = this.chunks[0];
    if (first === undefined) return false;
    // A frame of a kind that may be skipped is judged by its kind's limit (judgeKind), not here.
    const maxFrameBytes = this.skips ? MAX_ANNOUNCED_BYTES : this.limits.maxFrameBytes;
    let read = readFrameHeader(first, this.offset, first.length, maxFrameBytes, this.header);
    if (read === 0 && this.chunks.length > 1) {
      // Rare: the header is split between reads.
      const gathered = this.copyFront(this.headerBytes);
      read = readFrameHeader(this.headerBytes, 0, gathered, maxFrameBytes, this.header);
    }
    if (read === 0) return false;
    this.skip(read);
    if (this.header.messageBytes === 0) throw FrameError.malformed('frame of unknown kind (an empty message)');
    const size = this.header.messageBytes + Math.max(this.header.attachmentBytes, 0);
    // Only frames without an attachment are ever skipped: the others are judged here as always.
    if (this.skips && this.header.attachmentBytes >= 0 && size > this.limits.maxFrameBytes) {
      throw FrameError.tooLarge(size, this.limits.maxFrameBytes);
    }
    if (this.header.attachmentBytes >= 0 && !this.attachments) {
      throw new FrameError(ErrorCode.PROTOCOL, `no frame may carry an attachment ${this.limits.stage}`);
    }
    return true;
  }

  /**
   * Reads the kind from the message's first tag once its bytes (one, or two for fields 16 and up)
   * have arrived, and checks the frame against that kind's limit.
   */
  private readKind(): boolean {
    if (this.buffered < 1) return false;
    const byte0 = this.peek(0);
    let byte1: number | undefined;
    if (byte0 >= 0x80) {
      if (this.header.messageBytes < 2) throw FrameError.malformed('frame of unknown kind');
      if (this.buffered < 2) return false;
      byte1 = this.peek(1);
    }
    this.kind = this.judgeKind(byte0, byte1, this.header.messageBytes, this.header.attachmentBytes);
    return true;
  }

  /**
   * The kind given by a message's first tag (`byte0`, and `byte1` when byte0 says the tag goes
   * on), checked against that kind's limit with the frame's sizes.
   */
  private judgeKind(byte0: number, byte1: number | undefined, messageBytes: number, attachmentBytes: number): FrameKind {
    let tag = byte0;
    if (byte0 >= 0x80) {
      if (byte1 === undefined) throw FrameError.malformed('frame of unknown kind');
      // A third byte would make the field number 2048 or more: no kind.
      tag = byte1 >= 0x80 ? -1 : (byte0 & 0x7f) | (byte1 << 7);
    }
    const field = tag >> 3;
    const kind = (tag & 7) === LENGTH_DELIMITED ? KIND_BY_FIELD[field] : undefined;
    if (kind === undefined) throw FrameError.malformed(`frame of unknown kind (first field ${field}, wire type ${tag & 7})`);
    const limit = this.byField[field];
    if (limit === undefined) throw new FrameError(ErrorCode.PROTOCOL, `${kind} frames are not accepted ${this.limits.stage}`);
    const size = messageBytes + Math.max(attachmentBytes, 0);
    if (size > limit.maxBytes) {
      if (limit.skipOversized !== true || attachmentBytes >= 0 || OVERSIZED_REPLACEMENTS[kind] === undefined) {
        // Beyond every kind's limit, it is refused as readHeader refuses a frame without skips.
        throw size > this.limits.maxFrameBytes
          ? FrameError.tooLarge(size, this.limits.maxFrameBytes)
          : FrameError.tooLarge(size, limit.maxBytes, `${kind} frame`);
      }
      this.skipping = { limit: limit.maxBytes, left: messageBytes };
      return kind;
    }
    if (size > this.limits.maxFrameBytes) throw FrameError.tooLarge(size, this.limits.maxFrameBytes);
    if (attachmentBytes >= 0 && limit.attachment !== true) {
      throw new FrameError(ErrorCode.PROTOCOL, `${kind} frames carry no attachment`);
    }
    return kind;
  }

  /** The byte `index` bytes past the front of the queue (which holds more than `index`). */
  private peek(index: number): number {
    let at = this.offset + index;
    let i = 0;
    while (at >= this.chunks[i]!.length) at -= this.chunks[i++]!.length;
    return this.chunks[i]![at]!;
  }

  /** Copies the front of the queue into `target`, as much as fits; returns how much it copied. */
  private copyFront(target: Buffer): number {
    let copied = 0;
    let from = this.offset;
    for (let i = 0; i < this.chunks.length && copied < target.length; i++) {
      copied += this.chunks[i]!.copy(target, copied, from);
      from = 0;
    }
    return copied;
  }

  /** Drops `n` bytes from the front of the queue. */
  private skip(n: number): void {
    this.buffered -= n;
    let left = n;
    while (left > 0) {
      const head = this.chunks[0]!;
      const rest = head.length - this.offset;
      if (rest > left) {
        this.offset += left;
        return;
      }
      left -= rest;
      this.chunks.shift();
      this.offset = 0;
    }
  }

  /** Removes `n` bytes from the front of the queue; copies only when they span chunks. */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    const start = this.offset;
    if (first.length - start >= n) {
      this.skip(n);
      return first.subarray(start, start + n);
    }
    return Buffer.concat(this.takePieces(n), n);
  }

  /** Removes `n` bytes from the front of the queue as views of the chunks they are in. */
  private takePieces(n: number): Buffer[] {
    const pieces: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const head = this.chunks[0]!;
      const end = Math.min(head.length, this.offset + left);
      pieces.push(this.offset === 0 && end === head.length ? head : head.subarray(this.offset, end));
      left -= end - this.offset;
      this.skip(end - this.offset);
    }
    return pieces;
  }
}
