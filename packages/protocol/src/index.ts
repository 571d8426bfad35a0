// The `@dispy/protocol` entry: the wire (schema, framing, value codec, authentication, file
// transfer) and the errors both sides share. Helpers that are not the wire are in
// `@dispy/protocol/internal`; what node workers load is in `@dispy/protocol/codec`.
export { dispy } from './schema/schema.js';
export * from './errors/index.js';
export * from './version.js';
export * from './framing/index.js';
export { encodeValue, encodeArguments, decodeValue, MAX_VALUE_BYTES } from './codec/value-codec.js';
export { registerClass, isShippedInstance } from './codec/shipped-classes.js';
export { newNonce, mac, macEquals, shortSecretWarning, NONCE_BYTES, MIN_SECRET_CHARS } from './auth/hmac.js';
export { clientProof, nodeProof } from './auth/handshake.js';
export { ServerHandshake, type ServerHandshakeOptions } from './auth/server-handshake.js';
export {
  sealDatagram,
  openDatagram,
  MAX_DATAGRAM_BYTES,
  DATAGRAM_IV_BYTES,
  DATAGRAM_TAG_BYTES,
  DATAGRAM_WINDOW_MS,
  type OpenedDatagram,
  type DatagramBody,
  type SealOptions,
} from './auth/datagram.js';
export { ReplayGuard, MAX_NONCES_KEPT, type DatagramVerdict, type ReplayGuardOptions } from './auth/replay-guard.js';
export { confine, confineReal, maskMode, type ConfineRealOptions } from './files/confine.js';
export { fileSha256 } from './files/sha256.js';
export { sendFileChunks, FILE_CHUNK_BYTES, type FrameSink, type SendFileOptions } from './files/file-sender.js';
export { FileReceiver, type FileReceiverOptions, type ReceivedFile } from './files/file-receiver.js';
export { toAvailInfo, type AvailInfo } from './wire/avail-info.js';
export {
  loadClientTls,
  loadNodeTls,
  connectTls,
  describeTlsError,
  describeNodeTlsError,
  describePskError,
  looksLikeTls,
  normalizeFingerprint,
  isFingerprint,
  PLAIN_CLIENT_WAIT_MS,
  TLS_CONNECT_TIMEOUT_MS,
  PLAIN_NODE_MESSAGE,
  TLS_NODE_MESSAGE,
  CLIENT_CERT_MESSAGE,
  TLS_OPTION_NAMES,
  type TlsOptionNames,
  type ClientTls,
  type ClientTlsFiles,
  type NodeTlsFiles,
  type ConnectTlsOptions,
} from './tls/tls.js';
export { handOverToTls, type TlsHandoverOptions } from './tls/tls-handover.js';
export { pskClientTls, pskServerOptions, pskServerMessage, PSK_IDENTITY } from './tls/psk.js';
