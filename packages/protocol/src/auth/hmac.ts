import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** Bytes of every nonce dispy sends. */
export const NONCE_BYTES = 16;

/** A fresh random nonce. */
export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

/** HMAC-SHA256 with the shared secret over a role label and the given parts. */
export function mac(secret: string, label: string, ...parts: Uint8Array[]): Buffer {
  const hmac = createHmac('sha256', secret);
  hmac.update(label);
  for (const part of parts) {
    // Length-prefix every part so that ("ab","c") and ("a","bc") never collide.
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(part.length, 0);
    hmac.update(length);
    hmac.update(part);
  }
  return hmac.digest();
}

/** Constant-time comparison of an expected MAC with one received. */
export function macEquals(expected: Uint8Array, received: Uint8Array | null | undefined): boolean {
  return received != null && received.length === expected.length && timingSafeEqual(expected, received);
}
