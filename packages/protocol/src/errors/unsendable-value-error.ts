import { DispyError } from './dispy-error.js';
import { ErrorCode } from './error-codes.js';

/** A value cannot cross the wire (a function, a symbol, a WeakMap, an unshipped class, …). */
export class UnsendableValueError extends DispyError {
  static override readonly marker: symbol = Symbol.for('dispy.UnsendableValueError');
  override name = 'UnsendableValueError';
  /** Where in the value the problem is, e.g. `argument 2 .rows[3]`. */
  readonly path: string;

  constructor(path: string, reason: string) {
    super(ErrorCode.UNSENDABLE, `${path} cannot be sent: ${reason}`);
    this.path = path;
  }
}
