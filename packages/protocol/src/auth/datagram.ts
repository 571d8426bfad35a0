import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { dispy } from '../schema/schema.js';
import { NONCE_BYTES, datagramKey, mac, macEquals, newNonce } from './hmac.js';
import { PROTOCOL_VERSION } from '../version.js';
import { OptionError } from '../errors/option-error.js';

/** Largest datagram dispy sends or reads; well under a typical path MTU. */
export const MAX_DATAGRAM_BYTES = 1200;

/**
 * How far a datagram's `sentAt` may be from the receiver's clock, either way, in ms. Older or
 * newer datagrams are dropped as stale; within it, replays are caught by their nonce.
 */
export const DATAGRAM_WINDOW_MS = 120_000;

/** Bytes of the AES-256-GCM IV of a datagram sealed with a secret (fresh and random for each). */
export const DATAGRAM_IV_BYTES = 12;

/** Bytes of the AES-256-GCM tag of a datagram sealed with a secret (held in `Datagram.mac`). */
export const DATAGRAM_TAG_BYTES = 16;

export type DatagramBody = dispy.DatagramBody;

export interface SealOptions {
  /** The datagram's nonce (default: a fresh one); a ping's is echoed by its answer. */
  nonce?: Uint8Array;
  /** The sender's clock in ms (default: now); tests set it to make stale datagrams. */
  sentAt?: number;
  /** Pad the datagram with zeros to this size (pings: MAX_DATAGRAM_BYTES, so that no answer is larger). */
  padTo?: number;
}

/**
 * Encodes and protects a discovery datagram with the shared secret, stamping it with the time and
 * a nonce. With a secret the body is encrypted and authenticated (AES-256-GCM, a fresh random IV
 * each time; the version, IV and nonce are associated data): nothing of it can be read without the
 * secret. With the empty secret it is in the clear under an HMAC over the version and the body.
 * @throws OptionError when the datagram would exceed MAX_DATAGRAM_BYTES (a node name too long)
 */
export function sealDatagram(secret: string, body: dispy.IDatagramBody, options: SealOptions = {}): Buffer {
  const stamped: dispy.IDatagramBody = { ...body, sentAt: options.sentAt ?? Date.now(), nonce: options.nonce ?? newNonce() };
  let datagram = seal(secret, stamped);
  if (options.padTo !== undefined && datagram.byteLength < options.padTo) {
    // Length prefixes grow with the padding: a few bounded steps reach the size exactly (or one byte under it).
    let padding = options.padTo - datagram.byteLength;
    for (let step = 0; step < 8 && padding > 0; step++) {
      const padded = seal(secret, { ...stamped, padding: new Uint8Array(padding) });
      if (padded.byteLength <= options.padTo) datagram = padded;
      if (padded.byteLength === options.padTo) break;
      padding += options.padTo - padded.byteLength;
    }
  }
  if (datagram.byteLength > MAX_DATAGRAM_BYTES) {
    // Peers drop larger datagrams unread; say so here rather than go unanswered there.
    throw new OptionError(`discovery datagram of ${datagram.byteLength} bytes exceeds ${MAX_DATAGRAM_BYTES}; shorten the node name`);
  }
  return Buffer.from(datagram.buffer, datagram.byteOffset, datagram.byteLength);
}

function seal(secret: string, body: dispy.IDatagramBody): Uint8Array {
  if (secret === '') {
    const encoded = dispy.DatagramBody.encode(body).finish();
    const mac = macOf('', PROTOCOL_VERSION, encoded);
    return dispy.Datagram.encode({ version: PROTOCOL_VERSION, mac, body: encoded }).finish();
  }
  // The nonce travels in the clear (as associated data), not in the encrypted body.
  const { nonce, ...rest } = body;
  const plain = dispy.DatagramBody.encode(rest).finish();
  const iv = randomBytes(DATAGRAM_IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', datagramKey(secret), iv, { authTagLength: DATAGRAM_TAG_BYTES });
  cipher.setAAD(associatedData(PROTOCOL_VERSION, iv, nonce ?? new Uint8Array(0)));
  const encrypted = Buffer.concat([cipher.update(plain), cipher.final()]);
  return dispy.Datagram.encode({ version: PROTOCOL_VERSION, mac: cipher.getAuthTag(), body: encrypted, iv, nonce }).finish();
}

/** The 4 bytes of a datagram's version, big-endian, as MACed or associated. */
function versionBytes(version: number): Buffer {
  const bytes = Buffer.allocUnsafe(4);
  bytes.writeUInt32BE(version >>> 0, 0);
  return bytes;
}

/** The HMAC of a datagram sealed with the empty secret (or read as one): over its version and body. */
function macOf(secret: string, version: number, body: Uint8Array): Buffer {
  return mac(secret, 'dispy-datagram', versionBytes(version), body);
}

/** The associated data of an encrypted datagram: its version, IV and nonce, each length-prefixed. */
function associatedData(version: number, iv: Uint8Array, nonce: Uint8Array): Buffer {
  const parts: Buffer[] = [Buffer.from('dispy-datagram-v1'), versionBytes(version)];
  for (const part of [iv, nonce]) parts.push(versionBytes(part.length), Buffer.from(part));
  return Buffer.concat(parts);
}

/** The plaintext of an encrypted datagram, or undefined when it is not authentic under `secret`. */
function decrypt(secret: string, datagram: dispy.Datagram): Buffer | undefined {
  if (secret === '' || datagram.mac.length !== DATAGRAM_TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', datagramKey(secret), datagram.iv, { authTagLength: DATAGRAM_TAG_BYTES });
    decipher.setAAD(associatedData(datagram.version, datagram.iv, datagram.nonce));
    decipher.setAuthTag(datagram.mac);
    return Buffer.concat([decipher.update(datagram.body), decipher.final()]);
  } catch {
    return undefined;
  }
}

/**
 * A datagram as read: `authentic` is false when it is not authentic under our secret. The body of
 * an encrypted datagram that is not authentic is unknown: it holds only the nonce sent in the clear
 * (and no kind), so that a node can refuse a ping of another secret.
 */
export interface OpenedDatagram {
  version: number;
  authentic: boolean;
  body: DatagramBody;
}

/**
 * Decodes a discovery datagram and checks (with a secret: decrypts) it. Returns undefined for bytes
 * that are not a dispy datagram at all (too large, undecodable, no known kind), which callers drop
 * silently; never throws. Whether it is fresh is for a `ReplayGuard` to say, once it is authentic.
 */
export function openDatagram(secret: string, bytes: Buffer): OpenedDatagram | undefined {
  if (bytes.length > MAX_DATAGRAM_BYTES) return undefined;
  try {
    const datagram = dispy.Datagram.decode(bytes);
    const { version } = datagram;
    if (datagram.iv.length === 0) {
      // Sealed with the empty secret: the body in the clear, under an HMAC.
      if (datagram.nonce.length !== 0) return undefined;
      const body = dispy.DatagramBody.decode(datagram.body);
      if (body.kind === undefined) return undefined;
      const authentic = macEquals(macOf(secret, version, datagram.body), datagram.mac);
      return { version, authentic, body };
    }
    if (datagram.iv.length !== DATAGRAM_IV_BYTES || datagram.nonce.length !== NONCE_BYTES) return undefined;
    const plain = decrypt(secret, datagram);
    if (plain === undefined) return { version, authentic: false, body: dispy.DatagramBody.create({ nonce: datagram.nonce }) };
    const body = dispy.DatagramBody.decode(plain);
    if (body.kind === undefined) return undefined;
    body.nonce = datagram.nonce;
    return { version, authentic: true, body };
  } catch {
    return undefined;
  }
}
