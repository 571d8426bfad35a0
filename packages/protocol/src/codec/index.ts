// The `@dispy/protocol/codec` entry: what node worker processes need, without the wire schema
// and its parser (which they never use): the value codec, and the byte framing their job
// channel shares with the TCP connections.
export * from './value-codec.js';
export { registerClass, isShippedInstance } from './shipped-classes.js';
export {
  FrameDecoder,
  frameHeader,
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_HEADER_BYTES,
  ATTACHED_FRAME_HEADER_BYTES,
  ATTACHMENT_FLAG,
  type DecodedFrame,
} from '../framing/frame-decoder.js';
