import { DispyError } from './dispy-error.js';

/** The peer could not prove it holds the same secret, or spoke an incompatible protocol. */
export class AuthError extends DispyError {
  constructor(message: string) {
    super('DISPY_ERR_AUTH', message);
  }
}
