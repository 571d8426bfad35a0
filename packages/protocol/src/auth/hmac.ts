import { createHmac, hkdfSync, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';

/** Bytes of every nonce dispy sends. */
export const NONCE_BYTES = 16;

/** Secrets shorter than this are warned about (see `shortSecretWarning`). */
export const MIN_SECRET_CHARS = 16;

/** The fixed part of the salt of the secret's derivation: keys of dispy's version 1 derivation. */
const SECRET_SALT_LABEL = 'dispy-secret-v1';

/**
 * scrypt's cost: N = 2^15, r = 8, p = 1 (32 MiB, some 50–100 ms once per process and secret), so
 * that each guess of a secret from a captured handshake or datagram costs as much.
 */
const SCRYPT_OPTIONS = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

/** Keys derived in this process, by salt and secret: scrypt runs once per secret. */
const derived = new Map<string, Buffer>();

/** Whether a short secret has been warned about in this process. */
let warnedShort = false;

/** A fresh random nonce. */
export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

/**
 * The key every MAC and channel key is made from: scrypt over the secret, salted with a fixed
 * label and the deployment's salt (`DISPY_SECRET_SALT`, empty when unset; it must be the same on
 * every node and client of a deployment). Computed once per process and secret. An empty secret
 * (no secret) is used as it is: there is nothing to guess.
 */
export function secretKey(secret: string): Buffer {
  const salt = `${SECRET_SALT_LABEL}\0${process.env.DISPY_SECRET_SALT ?? ''}`;
  const cacheKey = `${salt}\0${secret}`;
  let key = derived.get(cacheKey);
  if (key === undefined) {
    key = secret === '' ? Buffer.alloc(0) : scryptSync(secret.normalize('NFC'), salt, 32, SCRYPT_OPTIONS);
    derived.set(cacheKey, key);
  }
  return key;
}

/**
 * The warning to log, once per process, when `secret` is set but shorter than MIN_SECRET_CHARS;
 * undefined otherwise (and after the first time).
 */
export function shortSecretWarning(secret: string): string | undefined {
  if (secret === '' || secret.length >= MIN_SECRET_CHARS || warnedShort) return undefined;
  warnedShort = true;
  return `the secret is shorter than ${MIN_SECRET_CHARS} characters: a captured handshake or datagram lets an attacker guess it offline; use a long random secret`;
}

/** HMAC-SHA256 keyed by the secret's derived key (`secretKey`) over a role label and the given parts. */
export function mac(secret: string, label: string, ...parts: Uint8Array[]): Buffer {
  const hmac = createHmac('sha256', secretKey(secret));
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

/** Datagram keys derived in this process, by the secret's derived key (itself cached per secret). */
const datagramKeys = new WeakMap<Buffer, Buffer>();

/**
 * The key that encrypts discovery datagrams under a (non-empty) secret: HKDF-SHA256 from the
 * secret's derived key under its own label, so it is never a MAC or channel key. Computed once per
 * process and secret.
 */
export function datagramKey(secret: string): Buffer {
  const base = secretKey(secret);
  let key = datagramKeys.get(base);
  if (key === undefined) {
    key = Buffer.from(hkdfSync('sha256', base, Buffer.alloc(0), 'dispy-datagram-key-v1', 32));
    datagramKeys.set(base, key);
  }
  return key;
}
