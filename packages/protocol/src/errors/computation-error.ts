import { DispyError } from './dispy-error.js';

/** The computation cannot be shipped to nodes as it is; the message says why and what to do. */
export class ComputationError extends DispyError {
  constructor(message: string) {
    super('DISPY_ERR_COMPUTATION', message);
  }
}
