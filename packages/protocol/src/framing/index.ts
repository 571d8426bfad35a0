// The framing of TCP sessions: the header format, the limits a connection judges frames by, the
// decoder and the socket that speaks frames.
export {
  frameHeader,
  readFrameHeader,
  FRAME_HEADER_BYTES,
  ATTACHED_FRAME_HEADER_BYTES,
  MAX_MESSAGE_BYTES,
  ATTACHMENT_FLAG,
  GATHER_BELOW_BYTES,
  type FrameHeader,
} from './frame-header.js';
export { FRAME_KIND_FIELDS, type FrameKind } from './frame-kinds.js';
export {
  HANDSHAKE_LIMITS,
  SESSION_LIMITS,
  CLIENT_SESSION_LIMITS,
  DEFAULT_MAX_FRAME_BYTES,
  MAX_JOB_FRAME_BYTES,
  MAX_REPEATED_ENTRIES,
  type FrameLimits,
  type KindLimit,
} from './frame-limits.js';
export { FrameDecoder, type DecodedFrame } from './frame-decoder.js';
export { FramedSocket, attachmentBytes, type Attachment, type Frame, type FrameInit, type FramedSocketOptions } from './framed-socket.js';
export { UNEXPECTED, dispatchFrame, type FrameBody, type FrameHandler, type FrameTable } from './frame-table.js';
