import { createCipheriv, createDecipheriv } from 'node:crypto';
import { FrameError } from '../errors/frame-error.js';
import { ErrorCode } from '../errors/error-codes.js';

/*
 * The protected channel's frames (see FramedSocket.protect). Each direction of a connection has
 * its own 256-bit key (channelKeys: HKDF from the secret's derived key and both handshake nonces,
 * so a frame of one connection means nothing on another) and counts its frames from 0. A frame
 * keeps its header in the clear, so the receiver can judge its size before buffering it; its
 * message, then its attachment if it has one, are each sealed with AES-256-GCM:
 *
 *   header (4 or 8 bytes: the lengths below)  | message ciphertext | tag (16) | attachment ciphertext | tag (16)
 *
 * The lengths in the header count the tags. The nonce of each part is its frame's number
 * (a 64-bit counter) and the part (0 message, 1 attachment), never reused under one key; the
 * header is the associated data of both parts. So a frame altered in any byte, replayed, moved
 * to another place in the stream or to another connection, or cut from its attachment, fails to
 * open, and the connection ends.
 */

/** Bytes of the authentication tag after each sealed part of a frame. */
export const TAG_BYTES = 16;

const CIPHER = 'aes-256-gcm';
const MESSAGE_PART = 0;
const ATTACHMENT_PART = 1;

/** The 12-byte GCM nonce of one part of frame number `counter`. */
function nonce(counter: number, part: number): Buffer {
  const iv = Buffer.alloc(12);
  iv[0] = part;
  iv.writeUInt32BE(Math.floor(counter / 0x100000000), 4);
  iv.writeUInt32BE(counter >>> 0, 8);
  return iv;
}

/** Seals the frames one side sends, in order. */
export class FrameSealer {
  private counter = 0;

  constructor(private readonly key: Buffer) {}

  /**
   * The pieces to write for one frame, in order: `header` (the frame's header, made with the
   * sealed lengths), the sealed message and its tag, then the sealed attachment pieces and their
   * tag when `attachment` is given.
   */
  seal(header: Buffer, message: Uint8Array, attachment?: readonly Uint8Array[]): Buffer[] {
    const counter = this.counter++;
    const cipher = createCipheriv(CIPHER, this.key, nonce(counter, MESSAGE_PART));
    cipher.setAAD(header);
    const out = [header, cipher.update(message), cipher.final(), cipher.getAuthTag()];
    if (attachment !== undefined) {
      const sealer = createCipheriv(CIPHER, this.key, nonce(counter, ATTACHMENT_PART));
      sealer.setAAD(header);
      for (const piece of attachment) if (piece.length > 0) out.push(sealer.update(piece));
      out.push(sealer.final(), sealer.getAuthTag());
    }
    return out;
  }
}

/** Opens the frames one side receives, in the order they were sealed. */
export class FrameOpener {
  private counter = 0;

  constructor(private readonly key: Buffer) {}

  /**
   * The message of the next frame, from its header's bytes and its sealed message (ciphertext
   * then tag).
   * @throws FrameError `DISPY_ERR_AUTH` when it does not open: altered, replayed, reordered or not
   *   sealed with this connection's key.
   */
  openMessage(header: Buffer, sealed: Buffer): Buffer {
    const decipher = createDecipheriv(CIPHER, this.key, nonce(this.counter, MESSAGE_PART));
    decipher.setAAD(header);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    const plain = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES));
    try {
      const rest = decipher.final();
      return rest.length === 0 ? plain : Buffer.concat([plain, rest]);
    } catch {
      throw failed('message');
    }
  }

  /**
   * The attachment of the frame whose message was opened last, from its sealed pieces (the tag
   * is the last TAG_BYTES of them); then the next frame is expected.
   * @throws FrameError `DISPY_ERR_AUTH` as openMessage.
   */
  openAttachment(header: Buffer, pieces: readonly Buffer[]): Buffer[] {
    const decipher = createDecipheriv(CIPHER, this.key, nonce(this.counter, ATTACHMENT_PART));
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
      decipher.final();
    } catch {
      throw failed('attachment');
    }
    return plain;
  }

  /** The frame is complete (its message, and its attachment if any, opened). */
  advance(): void {
    this.counter++;
  }
}

function failed(part: string): FrameError {
  return new FrameError(
    ErrorCode.AUTH,
    `a frame's ${part} failed authentication (altered, replayed, reordered or from another connection): the connection is not trusted`,
  );
}
