import { dispy } from '../schema/generated.js';
import { mac, macEquals } from './hmac.js';
import { PROTOCOL_VERSION } from '../version.js';
import { OptionError } from '../errors/option-error.js';

/** Largest datagram dispy sends or reads; well under a typical path MTU. */
export const MAX_DATAGRAM_BYTES = 1200;

export type DatagramBody = dispy.DatagramBody;

/** Encodes and authenticates a discovery datagram with the shared secret. */
export function sealDatagram(secret: string, body: dispy.IDatagramBody): Buffer {
  const encoded = dispy.DatagramBody.encode(body).finish();
  const datagram = dispy.Datagram.encode({
    version: PROTOCOL_VERSION,
    mac: mac(secret, 'dispy-datagram', encoded),
    body: encoded,
  }).finish();
  if (datagram.byteLength > MAX_DATAGRAM_BYTES) {
    // Peers drop larger datagrams unread; say so here rather than go unanswered there.
    throw new OptionError(`discovery datagram of ${datagram.byteLength} bytes exceeds ${MAX_DATAGRAM_BYTES}; shorten the node name`);
  }
  return Buffer.from(datagram.buffer, datagram.byteOffset, datagram.byteLength);
}

/** A datagram as read: `authentic` is false when its MAC does not match our secret. */
export interface OpenedDatagram {
  version: number;
  authentic: boolean;
  body: DatagramBody;
}

/**
 * Decodes a discovery datagram and checks its MAC. Returns undefined for bytes that are not a
 * dispy datagram at all (too large, undecodable), which callers drop silently.
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
