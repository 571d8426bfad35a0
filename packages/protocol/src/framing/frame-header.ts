/*
 * The one definition of a frame's header, shared by the TCP connections (FrameDecoder,
 * FramedSocket) and the node's job channel to its workers, which loads it through the
 * `@dispy/protocol/codec` entry. Nothing here knows the wire schema.
 */
import { FrameError } from '../errors/frame-error.js';

/** Bytes of the big-endian unsigned length that precedes every frame. */
export const FRAME_HEADER_BYTES = 4;

/** Bytes of the header of a frame with an attachment: its message's length, then the attachment's. */
export const ATTACHED_FRAME_HEADER_BYTES = 8;

/** Largest message one header can describe: its high bit says whether an attachment follows. */
export const MAX_MESSAGE_BYTES = 0x7fffffff;

/** The high bit of a frame's first length word: an attachment follows the message. */
export const ATTACHMENT_FLAG = 0x80000000;

/**
 * Attachments smaller than this are copied into one buffer with their frame's header and message
 * when sent, so a burst of small frames costs one write call each; larger ones are written as
 * they are, never copied. Used by every sender of frames (FramedSocket, the job channel).
 */
export const GATHER_BELOW_BYTES = 16 * 1024;

/** A frame's header once read. */
export interface FrameHeader {
  /** Length of the frame's message. */
  messageBytes: number;
  /** Length of its attachment; -1 when it has none (0 is an empty attachment). */
  attachmentBytes: number;
}

/**
 * The header of a frame: its message's length, and its attachment's when it has one (the
 * message's length then has its high bit set).
 *
 * @throws FrameError `DISPY_ERR_FRAME_TOO_LARGE` when `messageBytes` does not fit in 31 bits.
 */
export function frameHeader(messageBytes: number, attachmentBytes?: number): Buffer {
  if (messageBytes > MAX_MESSAGE_BYTES) throw FrameError.tooLarge(messageBytes, MAX_MESSAGE_BYTES, "a frame's message");
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

/**
 * Reads the header that starts at `offset` of `bytes`, of which the bytes before `end` have
 * arrived, into `into` (reused by the caller: nothing is allocated). Returns the header's length
 * (4, or 8 with an attachment), or 0 when not all of it has arrived.
 *
 * The frame's size, message and attachment together, is checked against `maxFrameBytes` the
 * moment the header is complete, so a receiver never buffers the body of a frame it refuses.
 *
 * @throws FrameError `DISPY_ERR_FRAME_TOO_LARGE` when the frame is larger than `maxFrameBytes`.
 */
export function readFrameHeader(bytes: Uint8Array, offset: number, end: number, maxFrameBytes: number, into: FrameHeader): number {
  if (end - offset < FRAME_HEADER_BYTES) return 0;
  const first = uint32(bytes, offset);
  const attached = first >= ATTACHMENT_FLAG;
  if (attached && end - offset < ATTACHED_FRAME_HEADER_BYTES) return 0;
  const messageBytes = attached ? first - ATTACHMENT_FLAG : first;
  const attachmentBytes = attached ? uint32(bytes, offset + FRAME_HEADER_BYTES) : -1;
  const size = messageBytes + Math.max(attachmentBytes, 0);
  if (size > maxFrameBytes) throw FrameError.tooLarge(size, maxFrameBytes);
  into.messageBytes = messageBytes;
  into.attachmentBytes = attachmentBytes;
  return attached ? ATTACHED_FRAME_HEADER_BYTES : FRAME_HEADER_BYTES;
}

/** The big-endian uint32 at `offset` (a Uint8Array need not be a Buffer, so no readUInt32BE). */
function uint32(bytes: Uint8Array, offset: number): number {
  return bytes[offset]! * 0x1000000 + ((bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!);
}
