import { createCipheriv, createDecipheriv } from 'node:crypto';
import { FrameError } from '../errors/frame-error.js';
import { ErrorCode } from '../errors/error-codes.js';
import { frameHeader } from './frame-header.js';

/*
 * The protected channel's records (see FramedSocket.protect). Each direction of a connection has
 * its own 256-bit key (channelKeys: HKDF from the secret's derived key and both handshake nonces,
 * so a record of one connection means nothing on another) and counts its records from 0. A record
 * carries whole frames, as plain frames are written (header, message, attachment): the frames one
 * side sends in the same tick, up to RECORD_BYTES, so that a burst of small frames costs one
 * cipher, not one per frame. The last frame of a record may leave its attachment out of the
 * record's body (the sender does so for attachments of GATHER_BELOW_BYTES or more, which are never
 * copied): the attachment is then sealed on its own and follows the body. A record keeps its
 * header in the clear, in the form of a plain frame's header, so the receiver can judge its size
 * before buffering it:
 *
 *   header (4 or 8 bytes: the lengths below)  | body ciphertext | tag (16) | attachment ciphertext | tag (16)
 *
 * The lengths in the header count the tags. The nonce of each part is its record's number
 * (a 64-bit counter) and the part (0 body, 1 attachment), never reused under one key; the header
 * is the associated data of both parts. So a record altered in any byte, replayed, moved to
 * another place in the stream or to another connection, or cut from its attachment, fails to
 * open, and the connection ends.
 */

/** Bytes of the authentication tag after each sealed part of a record. */
export const TAG_BYTES = 16;

/**
 * Bytes of frames a sender gathers into one record's body before it starts another: a record with
 * more than one frame has at most this many bytes of body (one frame alone may make it larger).
 */
export const RECORD_BYTES = 64 * 1024;

const CIPHER = 'aes-256-gcm';
const BODY_PART = 0;
const ATTACHMENT_PART = 1;

/** The 12-byte GCM nonce of one part of record number `counter`. */
function nonce(counter: number, part: number): Buffer {
  const iv = Buffer.alloc(12);
  iv[0] = part;
  iv.writeUInt32BE(Math.floor(counter / 0x100000000), 4);
  iv.writeUInt32BE(counter >>> 0, 8);
  return iv;
}

/** Seals the records one side sends, in order. */
export class FrameSealer {
  private counter = 0;

  constructor(private readonly key: Buffer) {}

  /**
   * The pieces to write for one record, in order: its header, the sealed body and its tag, then
   * the sealed attachment pieces and their tag when `attachment` is given. `body` holds whole plain
   * frames (header, message, attachment); `attachment` is the attachment of its last frame, which
   * that frame's header announces but the body leaves out.
   */
  seal(body: readonly Uint8Array[], attachment?: readonly Uint8Array[]): Buffer[] {
    let bodyBytes = 0;
    for (const piece of body) bodyBytes += piece.length;
    let attachmentBytes: number | undefined;
    if (attachment !== undefined) {
      attachmentBytes = 0;
      for (const piece of attachment) attachmentBytes += piece.length;
    }
    const header = frameHeader(bodyBytes + TAG_BYTES, attachmentBytes === undefined ? undefined : attachmentBytes + TAG_BYTES);
    const counter = this.counter++;
    const out = [header];
    sealPart(out, this.key, counter, BODY_PART, header, body);
    if (attachment !== undefined) sealPart(out, this.key, counter, ATTACHMENT_PART, header, attachment);
    return out;
  }
}

/** Appends one part's ciphertext pieces and its tag to `out`. */
function sealPart(out: Buffer[], key: Buffer, counter: number, part: number, header: Buffer, pieces: readonly Uint8Array[]): void {
  const cipher = createCipheriv(CIPHER, key, nonce(counter, part));
  cipher.setAAD(header);
  for (const piece of pieces) if (piece.length > 0) out.push(cipher.update(piece));
  const rest = cipher.final();
  if (rest.length > 0) out.push(rest);
  out.push(cipher.getAuthTag());
}

/** Opens the records one side receives, in the order they were sealed. */
export class FrameOpener {
  private counter = 0;

  constructor(private readonly key: Buffer) {}

  /**
   * The plain bytes of the next record's body (whole frames), as pieces, from its header's bytes
   * and its sealed body (ciphertext then tag, in the pieces it arrived in).
   * @throws FrameError `DISPY_ERR_AUTH` when it does not open: altered, replayed, reordered or not
   *   sealed with this connection's key.
   */
  openBody(header: Buffer, pieces: readonly Buffer[]): Buffer[] {
    return this.open(header, pieces, BODY_PART, 'body');
  }

  /**
   * The attachment that follows the body opened last, from its sealed pieces (the tag is the last
   * TAG_BYTES of them), as deciphered pieces (never gathered into one buffer).
   * @throws FrameError `DISPY_ERR_AUTH` as openBody.
   */
  openAttachment(header: Buffer, pieces: readonly Buffer[]): Buffer[] {
    return this.open(header, pieces, ATTACHMENT_PART, 'attachment');
  }

  /** The record is complete (its body, and its attachment if any, opened): the next is expected. */
  advance(): void {
    this.counter++;
  }

  private open(header: Buffer, pieces: readonly Buffer[], part: number, what: string): Buffer[] {
    const decipher = createDecipheriv(CIPHER, this.key, nonce(this.counter, part));
    decipher.setAAD(header);
    let total = 0;
    for (const piece of pieces) total += piece.length;
    const bodyBytes = total - TAG_BYTES;
    const tag = Buffer.allocUnsafe(TAG_BYTES);
    const plain: Buffer[] = [];
    let at = 0;
    for (const piece of pieces) {
      // The piece's bytes before bodyEnd are ciphertext, the rest part of the tag.
      const bodyEnd = Math.max(0, Math.min(piece.length, bodyBytes - at));
      if (bodyEnd > 0) plain.push(decipher.update(bodyEnd === piece.length ? piece : piece.subarray(0, bodyEnd)));
      if (bodyEnd < piece.length) piece.copy(tag, at + bodyEnd - bodyBytes, bodyEnd);
      at += piece.length;
    }
    decipher.setAuthTag(tag);
    try {
      const rest = decipher.final();
      if (rest.length > 0) plain.push(rest);
    } catch {
      throw failed(what);
    }
    return plain;
  }
}

function failed(part: string): FrameError {
  return new FrameError(
    ErrorCode.AUTH,
    `a record's ${part} failed authentication (altered, replayed, reordered or from another connection): the connection is not trusted`,
  );
}
