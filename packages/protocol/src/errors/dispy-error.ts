import type { ErrorCode } from './error-codes.js';

/**
 * Base class of every error dispy raises. `code` is stable across releases: switch on it, not on
 * the message.
 *
 * `XError.isInstance(e)` tells whether `e` is an `XError` even when two copies of dispy are
 * installed (where `instanceof` fails): each class has a marker of its own, a global symbol, and
 * an error carries the markers of its class and of every class above it. So
 * `DispyError.isInstance(new AuthError(...))` is true and `AuthError.isInstance(new
 * OptionError(...))` is false. Names are literals, not `constructor.name`, which bundlers rename.
 */
export class DispyError extends Error {
  /** The symbol that marks instances of this class (and its subclasses). */
  static readonly marker: symbol = Symbol.for('dispy.DispyError');
  override name = 'DispyError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    for (let cls: unknown = new.target; cls !== Error && typeof cls === 'function'; cls = Object.getPrototypeOf(cls)) {
      const { marker } = cls as { marker?: symbol };
      if (marker) Object.defineProperty(this, marker, { value: true });
    }
  }

  /** Whether `error` is an instance of the class this is called on, by its marker. */
  static isInstance<T extends typeof DispyError>(this: T, error: unknown): error is InstanceType<T> {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[this.marker] === true;
  }
}
