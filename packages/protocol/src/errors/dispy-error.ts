const marker = Symbol.for('dispy.error');

/**
 * Base class of every error dispy raises. `code` is stable across releases: switch on it, not on
 * the message. `DispyError.isInstance(e)` works even when two copies of dispy are installed.
 */
export class DispyError extends Error {
  readonly code: string;
  private readonly [marker] = true;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  static isInstance(error: unknown): error is DispyError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }
}
