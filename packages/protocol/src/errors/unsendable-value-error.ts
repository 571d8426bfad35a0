import { DispyError } from './dispy-error.js';

/** A value cannot cross the wire (a function, a symbol, a WeakMap, an unshipped class, …). */
export class UnsendableValueError extends DispyError {
  /** Where in the value the problem is, e.g. `argument 2 .rows[3]`. */
  readonly path: string;

  constructor(path: string, reason: string) {
    super('DISPY_ERR_UNSENDABLE', `${path} cannot be sent: ${reason}`);
    this.path = path;
  }
}
