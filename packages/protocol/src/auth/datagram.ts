import { dispy } from '../schema/generated.js';
import { mac, macEquals, newNonce } from './hmac.js';
import { PROTOCOL_VERSION } from '../version.js';
import { OptionError } from '../errors/option-error.js';

/** Largest datagram dispy sends or reads; well under a typical path MTU. */
export const MAX_DATAGRAM_BYTES = 1200;

/**
 * How far a datagram's `sentAt` may be from the receiver's clock, either way, in ms. Older or
 * newer datagrams are dropped as stale; within it, replays are caught by their nonce.
 */
export const DATAGRAM_WINDOW_MS = 120_000;

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
 * Encodes and authenticates a discovery datagram with the shared secret, stamping it with the
 * time and a nonce under the MAC.
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
  const encoded = dispy.DatagramBody.encode(body).finish();
  return dispy.Datagram.encode({ version: PROTOCOL_VERSION, mac: mac(secret, 'dispy-datagram', encoded), body: encoded }).finish();
}

/** A datagram as read: `authentic` is false when its MAC does not match our secret. */
export interface OpenedDatagram {
  version: number;
  authentic: boolean;
  body: DatagramBody;
}

/**
 * Decodes a discovery datagram and checks its MAC. Returns undefined for bytes that are not a
 * dispy datagram at all (too large, undecodable), which callers drop silently. Whether it is
 * fresh is for a `ReplayGuard` to say, once it is authentic.
 */
export function openDatagram(secret: string, bytes: Buffer): OpenedDatagram | undefined {
  if (bytes.length > MAX_DATAGRAM_BYTES) return undefined;
  try {
    const datagram = dispy.Datagram.decode(bytes);
    const body = dispy.DatagramBody.decode(datagram.body);
    if (body.kind === undefined) return undefined;
    const authentic = macEquals(mac(secret, 'dispy-datagram', datagram.body), datagram.mac);
    return { version: datagram.version, authentic, body };
  } catch {
    return undefined;
  }
}
