import { DispyError } from './dispy-error.js';
import { ErrorCode } from './error-codes.js';

/** The computation cannot be shipped to nodes as it is; the message says why and what to do. */
export class ComputationError extends DispyError {
  static override readonly marker: symbol = Symbol.for('dispy.ComputationError');
  override name = 'ComputationError';

  constructor(message: string) {
    super(ErrorCode.COMPUTATION, message);
  }
}
