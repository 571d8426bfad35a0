// The `@dispy/protocol/codec` entry: what node worker processes need, without the wire schema
// and its parser (which they never use): the value codec, and the header format of frames that
// their job channel shares with the TCP connections, with the bound of a job's frame.
export * from './value-codec.js';
export { registerClass, isShippedInstance } from './shipped-classes.js';
export {
  frameHeader,
  readFrameHeader,
  FRAME_HEADER_BYTES,
  ATTACHED_FRAME_HEADER_BYTES,
  ATTACHMENT_FLAG,
  GATHER_BELOW_BYTES,
  type FrameHeader,
} from '../framing/frame-header.js';
export { MAX_JOB_FRAME_BYTES } from '../framing/frame-limits.js';
