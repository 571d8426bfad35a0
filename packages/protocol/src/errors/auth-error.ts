import { DispyError } from './dispy-error.js';
import { ErrorCode } from './error-codes.js';

/** The peer could not prove it holds the same secret, or spoke an incompatible protocol. */
export class AuthError extends DispyError {
  static override readonly marker: symbol = Symbol.for('dispy.AuthError');
  override name = 'AuthError';

  constructor(message: string) {
    super(ErrorCode.AUTH, message);
  }
}
