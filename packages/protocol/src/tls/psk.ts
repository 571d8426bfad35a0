import { hkdfSync } from 'node:crypto';
import tls from 'node:tls';
import { secretKey } from '../auth/hmac.js';
import { TLS_CONNECT_TIMEOUT_MS, type ClientTls } from './tls.js';

/*
 * The protected channel of a deployment with a secret and no certificates: TLS 1.3 with a
 * pre-shared key (RFC 8446 §2.2) made from the secret. OpenSSL does the record protection
 * (AES-GCM, with sequence numbers and per-connection keys) and, since it offers only the
 * psk_dhe_ke mode, an X25519 exchange on every connection: a secret that leaks later does not
 * open connections recorded before (forward secrecy). A peer with another secret fails the PSK
 * binder, before anything of dispy is sent. dispy's own handshake (the secret's proofs over both
 * nonces) still runs inside, as it does inside TLS with certificates.
 */

/** The name of the pre-shared key both sides use: one key per secret (and deployment salt). */
export const PSK_IDENTITY = 'dispy-secret-v1';

/** TLS 1.3 suites whose hash is SHA-256, the hash of a PSK set through OpenSSL's callbacks. */
const PSK_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256';

/** PSKs derived in this process, by the secret's derived key (itself cached per secret). */
const pskKeys = new WeakMap<Buffer, Buffer>();

/**
 * The pre-shared key of a (non-empty) secret: HKDF-SHA256 from the secret's derived key (scrypt,
 * once per process) under its own label, so it is never a MAC or datagram key.
 */
export function pskKey(secret: string): Buffer {
  const base = secretKey(secret);
  let key = pskKeys.get(base);
  if (key === undefined) {
    key = Buffer.from(hkdfSync('sha256', base, Buffer.alloc(0), 'dispy-tls-psk-v1', 32));
    pskKeys.set(base, key);
  }
  return key;
}

/** A TLS server's options that accept only clients holding the secret's PSK. */
export function pskServerOptions(secret: string): tls.TlsOptions {
  const key = pskKey(secret);
  return {
    minVersion: 'TLSv1.3',
    ciphers: PSK_CIPHERS,
    // Any other identity gets no key: the handshake fails (the server has no certificate either).
    pskCallback: (_socket, identity) => (identity === PSK_IDENTITY ? key : null),
    handshakeTimeout: TLS_CONNECT_TIMEOUT_MS,
  };
}

/** Client settings made in this process, by PSK: every connection of a secret shares one secure context. */
const clientSettings = new WeakMap<Buffer, ClientTls>();

/** A client's TLS settings that connect with the secret's PSK (see connectTls); made once per process and secret. */
export function pskClientTls(secret: string): ClientTls {
  const key = pskKey(secret);
  let settings = clientSettings.get(key);
  if (settings === undefined) {
    settings = {
      secureContext: tls.createSecureContext({ minVersion: 'TLSv1.3', ciphers: PSK_CIPHERS }),
      fingerprints: [],
      psk: { identity: PSK_IDENTITY, key },
    };
    clientSettings.set(key, settings);
  }
  return settings;
}

/** What a server with a secret (and no certificate) answers a client that does not begin the PSK handshake (in plain, then closes). */
export function pskServerMessage(role: string): string {
  return `this ${role} has a secret, and the client has none (or speaks an older protocol): give the client the ${role}'s secret`;
}
