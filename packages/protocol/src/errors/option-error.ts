import { DispyError } from './dispy-error.js';

/** An option passed to a cluster, node or CLI is wrong; the message names it and what is accepted. */
export class OptionError extends DispyError {
  constructor(message: string) {
    super('DISPY_ERR_OPTION', message);
  }
}
