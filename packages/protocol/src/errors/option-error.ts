import { DispyError } from './dispy-error.js';
import { ErrorCode } from './error-codes.js';

/** An option passed to a cluster, node or CLI is wrong; the message names it and what is accepted. */
export class OptionError extends DispyError {
  static override readonly marker: symbol = Symbol.for('dispy.OptionError');
  override name = 'OptionError';

  constructor(message: string) {
    super(ErrorCode.OPTION, message);
  }
}
