import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { AuthError } from '../errors/auth-error.js';
import { DispyError } from '../errors/dispy-error.js';
import { ErrorCode } from '../errors/error-codes.js';
import { OptionError } from '../errors/option-error.js';

/**
 * TLS with certificates for the client–node connection, and for dispyscheduler's (toward its
 * nodes as their client, toward SharedJobClusters as their server). A node given a certificate and key serves
 * TLS only; a client given a CA (or a pinned fingerprint, or a certificate of its own) connects
 * with TLS only. The dispy handshake (the secret) runs inside TLS unchanged; its frames are then not
 * sealed a second time (see the protocol reference).
 */

/** TLS records start with their content type: 22 is a handshake, a ClientHello's. */
const TLS_HANDSHAKE_RECORD = 0x16;

/**
 * How long a TLS node waits for a client's first bytes (a TLS client sends its ClientHello as
 * soon as it connects; a plain client waits for the node's Hello, so sends nothing): after this,
 * the node tells the client in plain that it requires TLS, and closes.
 */
export const PLAIN_CLIENT_WAIT_MS = 1000;

/** How long a client waits for a node's TLS handshake. */
export const TLS_CONNECT_TIMEOUT_MS = 10_000;

/** Whether the first bytes a peer sent are a TLS handshake record (0x16 0x03: a ClientHello). */
export function looksLikeTls(chunk: Buffer): boolean {
  return chunk[0] === TLS_HANDSHAKE_RECORD && (chunk.length < 2 || chunk[1] === 0x03);
}

/** What a plain node answers a TLS client (in plain, then closes). */
export const PLAIN_NODE_MESSAGE =
  'this node does not use TLS: give the client no cafile, certfile or certFingerprint, or start the node with --certfile and --keyfile';
/** What a node that requires client certificates answers a client without a good one (inside TLS, then closes). */
export const CLIENT_CERT_MESSAGE =
  "this node requires a client certificate signed by its --cafile (--require-client-cert): give the client a keyfile and certfile signed by the node's CA";
/** What a TLS node answers a client that does not speak TLS (in plain, then closes). */
export const TLS_NODE_MESSAGE =
  'this node requires TLS (--certfile): give the client a cafile (the CA that signed the node certificate) or a certFingerprint ' +
  '(dispyscheduler: --node-cafile or --node-cert-fingerprint)';

/** A SHA-256 fingerprint as 64 uppercase hex digits (colons and case ignored). */
export function normalizeFingerprint(fingerprint: string): string {
  return fingerprint.replace(/[:\s]/g, '').toUpperCase();
}

/** Whether a string is a SHA-256 fingerprint (64 hex digits, colons allowed between pairs). */
export function isFingerprint(fingerprint: string): boolean {
  return /^[0-9A-F]{64}$/.test(normalizeFingerprint(fingerprint));
}

function readPem(option: string, file: string, who: string, isKey = false): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (error) {
    throw new OptionError(`${who}: option "${option}": ${file} cannot be read: ${(error as Error).message}`);
  }
  // A CA file that holds no certificate would be taken as trusting none, silently.
  if (!isKey && !pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new OptionError(`${who}: option "${option}": ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  return pem;
}

/**
 * What the TLS options are called where they were given, for the messages of errors: a
 * JobCluster's and dispynode's own names by default; dispyscheduler's `nodeCafile` and so on.
 */
export interface TlsOptionNames {
  keyfile: string;
  certfile: string;
  cafile: string;
  certFingerprint: string;
  requireClientCert: string;
  /** Whose certificate `certfile` is, when it serves TLS (default "the node's"). */
  server?: string;
}

export const TLS_OPTION_NAMES: TlsOptionNames = {
  keyfile: 'keyfile',
  certfile: 'certfile',
  cafile: 'cafile',
  certFingerprint: 'certFingerprint',
  requireClientCert: 'requireClientCert',
};

/** A client's TLS settings, read and checked once (files, keys) when the cluster is made. */
export interface ClientTls {
  secureContext: tls.SecureContext;
  /** Pinned SHA-256 fingerprints (normalized): the node's certificate must have one; CA and host name are then not checked. */
  fingerprints: string[];
  /** What the options were called, for the fixes that errors name (default TLS_OPTION_NAMES). */
  names?: TlsOptionNames;
  /** Set for TLS 1.3 with the secret's pre-shared key (see psk.ts) instead of certificates: the peer must present none. */
  psk?: { identity: string; key: Buffer };
}

export interface ClientTlsFiles {
  keyfile?: string;
  certfile?: string;
  cafile?: string;
  certFingerprint?: string | string[];
}

/**
 * Reads a client's TLS files; undefined when none is given (the client then speaks plain).
 * TLS is on with any of `cafile`, `certfile`, `certFingerprint`. The node's certificate is
 * verified by the pinned fingerprint when one is given; else against `cafile`, or without it the
 * system's CAs and `certfile` itself (dispy's one certificate shared by clients and nodes), and by
 * the address connected to. `keyfile` defaults to `certfile` (a key may be stored in it).
 * @throws OptionError naming the file when one cannot be read or does not hold what it should
 */
export function loadClientTls(files: ClientTlsFiles, who: string, names: TlsOptionNames = TLS_OPTION_NAMES): ClientTls | undefined {
  const fingerprints = [files.certFingerprint ?? []].flat();
  const needsCert = `${who}: option "${names.keyfile}" needs "${names.certfile}" (the certificate of that key)`;
  if (files.cafile === undefined && files.certfile === undefined && fingerprints.length === 0) {
    if (files.keyfile !== undefined) throw new OptionError(needsCert);
    return undefined;
  }
  for (const fingerprint of fingerprints) {
    if (!isFingerprint(fingerprint)) {
      throw new OptionError(
        `${who}: option "${names.certFingerprint}": must be a SHA-256 fingerprint (64 hex digits, colons allowed), got ${JSON.stringify(fingerprint)}`,
      );
    }
  }
  if (files.keyfile !== undefined && files.certfile === undefined) throw new OptionError(needsCert);
  const cert = files.certfile === undefined ? undefined : readPem(names.certfile, files.certfile, who);
  const key = files.keyfile === undefined ? cert : readPem(names.keyfile, files.keyfile, who, true);
  const ca = files.cafile !== undefined ? [readPem(names.cafile, files.cafile, who)] : cert ? [...tls.rootCertificates, cert] : undefined;
  try {
    const secureContext = tls.createSecureContext({ ...(ca ? { ca } : {}), ...(cert ? { cert, key } : {}) });
    return {
      secureContext,
      fingerprints: fingerprints.map(normalizeFingerprint),
      ...(names === TLS_OPTION_NAMES ? {} : { names }),
    };
  } catch (error) {
    throw new OptionError(
      `${who}: the TLS files (${names.keyfile}, ${names.certfile}, ${names.cafile}) are not usable: ${(error as Error).message}`,
    );
  }
}

export interface NodeTlsFiles {
  keyfile?: string;
  certfile?: string;
  cafile?: string;
  requireClientCert?: boolean;
}

/**
 * Reads a node's TLS files into a TLS server's options; undefined when it has no certificate (it
 * serves plain). `keyfile` defaults to `certfile`; clients' certificates (`requireClientCert`)
 * are verified against `cafile`, or without it `certfile` itself.
 * @throws OptionError naming the file when one cannot be read or does not hold what it should
 */
export function loadNodeTls(files: NodeTlsFiles, who: string, names: TlsOptionNames = TLS_OPTION_NAMES): tls.TlsOptions | undefined {
  if (files.certfile === undefined) {
    for (const option of ['keyfile', 'cafile', 'requireClientCert'] as const) {
      if (files[option] !== undefined && files[option] !== false) {
        throw new OptionError(`${who}: option "${names[option]}" needs "${names.certfile}" (${names.server ?? "the node's"} certificate)`);
      }
    }
    return undefined;
  }
  const cert = readPem(names.certfile, files.certfile, who);
  const key = files.keyfile === undefined ? cert : readPem(names.keyfile, files.keyfile, who, true);
  const ca = files.cafile === undefined ? cert : readPem(names.cafile, files.cafile, who);
  const options: tls.TlsOptions = {
    cert,
    key,
    ca,
    requestCert: files.requireClientCert === true,
    // The node checks `authorized` itself, so that it can tell the client why in an Error frame.
    rejectUnauthorized: false,
    handshakeTimeout: TLS_CONNECT_TIMEOUT_MS,
  };
  try {
    tls.createSecureContext(options);
  } catch (error) {
    throw new OptionError(
      `${who}: the TLS files (${names.keyfile}, ${names.certfile}, ${names.cafile}) are not usable: ${(error as Error).message}`,
    );
  }
  return options;
}

export interface ConnectTlsOptions {
  host: string;
  port: number;
  localAddress?: string;
  tls: ClientTls;
  timeoutMs?: number;
  /** What the peer is, for the messages of failures: `node` (default) or `dispyscheduler`. */
  peerKind?: string;
}

/** The flags that fix a TLS mismatch, on a peer of each kind (a node, or dispyscheduler toward its clients). */
function peerFlags(peerKind: string): { serve: string; requireCert: string; ca: string } {
  return peerKind === 'dispyscheduler'
    ? {
        serve: '--cluster-certfile and --cluster-keyfile',
        requireCert: 'the scheduler requires one',
        ca: "the scheduler's --cluster-cafile",
      }
    : { serve: '--certfile and --keyfile', requireCert: 'the node requires one', ca: "the node's --cafile" };
}

/**
 * Connects to a node with TLS and resolves once its certificate is verified (by the pinned
 * fingerprint, or by the CA and the address connected to), before anything of dispy is read.
 * @throws AuthError saying why the node was not trusted, or that it does not speak TLS, and what to change
 * @throws DispyError (`NO_ANSWER`) when it does not connect in time
 */
export function connectTls(options: ConnectTlsOptions): Promise<tls.TLSSocket> {
  const { host, port, localAddress, timeoutMs = TLS_CONNECT_TIMEOUT_MS, peerKind = 'node' } = options;
  const { secureContext, fingerprints, psk } = options.tls;
  const pinned = fingerprints.length > 0;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      ...(localAddress ? { localAddress } : {}),
      ...(net.isIP(host) || psk ? {} : { servername: host }),
      secureContext,
      ...(psk
        ? // The PSK authenticates the peer; one that sends a certificate instead is refused below.
          { pskCallback: () => ({ psk: psk.key, identity: psk.identity }), checkServerIdentity: () => undefined, rejectUnauthorized: false }
        : { rejectUnauthorized: !pinned }),
    });
    const fail = (error: Error): void => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onError = (error: Error): void =>
      fail(psk ? describePskError(error, host, port, peerKind) : describeTlsError(error, host, port, peerKind, options.tls.names));
    const onSecure = (): void => {
      if (psk && Object.keys(socket.getPeerCertificate()).length > 0) {
        fail(
          new AuthError(
            `${peerKind} ${host}:${port} serves TLS with a certificate: give this client the cafile that signed it, or pin it with certFingerprint (a secret alone does not verify a certificate)`,
          ),
        );
        return;
      }
      if (pinned) {
        const fingerprint = normalizeFingerprint(socket.getPeerCertificate().fingerprint256 ?? '');
        if (!fingerprints.includes(fingerprint)) {
          fail(
            new AuthError(
              `${peerKind} ${host}:${port}'s certificate (SHA-256 ${fingerprint}) is not the pinned one (${options.tls.names?.certFingerprint ?? 'certFingerprint'}); not used`,
            ),
          );
          return;
        }
      }
      cleanup();
      resolve(socket);
    };
    const cleanup = (): void => {
      socket.setTimeout(0);
      socket.off('error', onError);
      socket.off('secureConnect', onSecure);
    };
    socket.setTimeout(timeoutMs, () =>
      fail(new DispyError(ErrorCode.NO_ANSWER, `${peerKind} ${host}:${port} did not complete TLS in time`)),
    );
    socket.once('error', onError);
    socket.once('secureConnect', onSecure);
  });
}

/** TLS errors a peer that does not speak TLS causes (it answered in plain). */
const PLAIN_PEER = new Set([
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
  'ERR_SSL_UNKNOWN_PROTOCOL',
  'ERR_SSL_RECORD_LAYER_FAILURE',
  'ERR_SSL_HTTP_REQUEST',
]);
/** The node's certificate is not signed by a CA the client trusts. */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);
/** The node refused the client's certificate, or that it had none (mutual TLS). */
const CLIENT_CERT_REFUSED = new Set([
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
  'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED',
]);

/**
 * A client's TLS failure as an AuthError naming the peer (a node, or `dispyscheduler` for a
 * SharedJobCluster), what went wrong and the likely fix. Errors that are not TLS's (a refused or
 * reset connection) are returned as they are.
 */
export function describeTlsError(
  error: Error,
  host: string,
  port: number,
  peerKind = 'node',
  names: TlsOptionNames = TLS_OPTION_NAMES,
): Error {
  if (DispyError.isInstance(error)) return error;
  const { keyfile, certfile, cafile, certFingerprint } = names;
  const code = (error as NodeJS.ErrnoException).code ?? '';
  const node = `${peerKind} ${host}:${port}`;
  const flags = peerFlags(peerKind);
  if (PLAIN_PEER.has(code)) {
    return new AuthError(
      `${node} does not use TLS (it answered in plain): start it with ${flags.serve}, or give this client no ${cafile}, ${certfile} or ${certFingerprint}`,
    );
  }
  if (UNTRUSTED.has(code)) {
    return new AuthError(
      `${node}'s certificate is not trusted (${code}): give the ${cafile} of the CA that signed it, or pin it with ${certFingerprint}`,
    );
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new AuthError(
      `${node}'s certificate is not for this address (${error.message}): the ${peerKind}'s certificate needs ${host} among its subject alternative names (${net.isIP(host) ? 'IP' : 'DNS'}:${host}), or pin it with ${certFingerprint}`,
    );
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return new AuthError(`${node}'s certificate is not valid now (${code}): renew it`);
  }
  if (code === 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE') {
    return new AuthError(
      `${node} refused this client's TLS (${code}): it has no certificate (it may use only the secret's TLS: then give this client no ${cafile}, ${certfile} or ${certFingerprint}), or ${flags.requireCert} (--require-client-cert) and this client's is missing or not signed by ${flags.ca}`,
    );
  }
  if (CLIENT_CERT_REFUSED.has(code)) {
    return new AuthError(
      `${node} refused this client's certificate, or its lack of one (${code}): ${flags.requireCert} (--require-client-cert); give this client a ${keyfile} and ${certfile} signed by ${flags.ca}`,
    );
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || /certificate|ssl|tls/i.test(error.message)) {
    return new AuthError(`${node}: TLS failed: ${error.message}`);
  }
  return error;
}

/** TLS alerts of a failed PSK binder: the two sides' keys differ. */
const PSK_MISMATCH = new Set([
  'ERR_SSL_SSLV3_ALERT_ILLEGAL_PARAMETER',
  'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR',
  'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
  'ERR_SSL_SSLV3_ALERT_BAD_RECORD_MAC',
]);

/**
 * A client's failure of the secret's TLS (TLS-PSK, see psk.ts) as an AuthError naming the peer
 * and the fix. Errors that are not TLS's are returned as they are.
 */
export function describePskError(error: Error, host: string, port: number, peerKind = 'node'): Error {
  if (DispyError.isInstance(error)) return error;
  const code = (error as NodeJS.ErrnoException).code ?? '';
  const peer = `${peerKind} ${host}:${port}`;
  if (PLAIN_PEER.has(code)) {
    return new AuthError(
      `${peer} has no secret, or speaks an older protocol (it answered in plain), and this client has one: give the ${peerKind} the same secret`,
    );
  }
  if (PSK_MISMATCH.has(code)) {
    return new AuthError(
      `${peer}'s secret differs from this client's (the secret's TLS handshake failed: ${code}); check the secret, and DISPY_SECRET_SALT where one is set`,
    );
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_'))
    return new AuthError(`${peer}: the secret's TLS failed: ${error.message}`);
  return error;
}

/**
 * A server's TLS failure with a client, as the line it logs; `role` is what the server is (a
 * node, or dispyscheduler toward its clients). (A client that refuses the server's certificate
 * closes after the handshake without saying why: the server sees it leave.)
 */
export function describeNodeTlsError(error: Error, role = 'node'): string {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  const cafile = role === 'node' ? '--cafile' : '--cluster-cafile';
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') {
    return `it presented no certificate, and this ${role} requires one (--require-client-cert); refused`;
  }
  if (code === 'ERR_SSL_CERTIFICATE_VERIFY_FAILED' || /certificate verify failed/i.test(error.message)) {
    return `its certificate is not signed by this ${role}'s ${cafile} (${error.message}); refused`;
  }
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'its TLS handshake did not complete in time; refused';
  if (code === 'ERR_SSL_BINDER_DOES_NOT_VERIFY')
    return `its secret differs from this ${role}'s (the secret's TLS handshake failed); refused`;
  if (code === 'ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM' || code === 'ERR_SSL_NO_SHARED_CIPHER') {
    return `it began TLS with certificates (it has a cafile, certfile or certFingerprint), and this ${role} has no certificate, only the secret's TLS; refused`;
  }
  return `TLS failed: ${error.message}; refused`;
}
