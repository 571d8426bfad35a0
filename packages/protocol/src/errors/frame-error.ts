import { DispyError } from './dispy-error.js';
import { ErrorCode } from './error-codes.js';

/** A frame on the wire was larger than allowed, or could not be decoded. */
export class FrameError extends DispyError {
  static override readonly marker: symbol = Symbol.for('dispy.FrameError');
  static readonly TOO_LARGE = ErrorCode.FRAME_TOO_LARGE;
  static readonly MALFORMED = ErrorCode.FRAME_MALFORMED;
  override name = 'FrameError';

  static tooLarge(size: number, limit: number, what = 'frame'): FrameError {
    return new FrameError(ErrorCode.FRAME_TOO_LARGE, `${what} of ${size} bytes exceeds the limit of ${limit} bytes`);
  }

  static malformed(what: string, cause?: unknown): FrameError {
    return new FrameError(ErrorCode.FRAME_MALFORMED, `malformed frame: ${what}`, { cause });
  }
}
