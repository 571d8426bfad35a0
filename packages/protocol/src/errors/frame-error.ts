import { DispyError } from './dispy-error.js';

/** A frame on the wire was larger than allowed, or could not be decoded. */
export class FrameError extends DispyError {
  static readonly TOO_LARGE = 'DISPY_ERR_FRAME_TOO_LARGE';
  static readonly MALFORMED = 'DISPY_ERR_FRAME_MALFORMED';

  static tooLarge(size: number, limit: number): FrameError {
    return new FrameError(
      FrameError.TOO_LARGE,
      `frame of ${size} bytes exceeds the limit of ${limit} bytes`,
    );
  }

  static malformed(what: string, cause?: unknown): FrameError {
    return new FrameError(FrameError.MALFORMED, `malformed frame: ${what}`, { cause });
  }
}
