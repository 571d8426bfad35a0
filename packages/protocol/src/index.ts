export { dispy } from './schema/generated.js';
export * from './errors/index.js';
export * from './version.js';
export {
  FrameDecoder,
  frameHeader,
  FRAME_HEADER_BYTES,
  ATTACHED_FRAME_HEADER_BYTES,
  DEFAULT_MAX_FRAME_BYTES,
  type DecodedFrame,
} from './framing/frame-decoder.js';
export {
  FramedSocket,
  attachmentBytes,
  type Attachment,
  type Frame,
  type FrameInit,
  type FramedSocketOptions,
} from './framing/framed-socket.js';
export { encodeValue, encodeArguments, decodeValue, registerClass, isShippedInstance, MAX_VALUE_BYTES } from './codec/value-codec.js';
export { checkSendable } from './codec/check-sendable.js';
export { newNonce, mac, macEquals, NONCE_BYTES } from './auth/hmac.js';
export { clientProof, nodeProof } from './auth/handshake.js';
export { sealDatagram, openDatagram, MAX_DATAGRAM_BYTES, type OpenedDatagram, type DatagramBody } from './auth/datagram.js';
export { analyzeFunction, assignedGlobals, type ShippableFunction, type AnalyzeOptions } from './shipping/analyze-function.js';
export { KNOWN_GLOBALS, DISPY_COMPUTATION_GLOBALS, TRANSPILER_HELPERS } from './shipping/known-globals.js';
export { createLogger, LOG_LEVELS, type Logger, type LogLevel } from './log/logger.js';
export { isWildcard, localAddressFacing, broadcastAddressOf, broadcastAddresses } from './net/addresses.js';
export { formatZodError, suggestOption } from './errors/format-zod-error.js';
export { confine } from './files/confine.js';
export { fileSha256 } from './files/sha256.js';
export { sendFileChunks, FILE_CHUNK_BYTES, type FrameSink, type SendFileOptions } from './files/file-sender.js';
export { FileReceiver, type FileReceiverOptions, type ReceivedFile } from './files/file-receiver.js';
