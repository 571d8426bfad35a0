export { DispyError } from './dispy-error.js';
export { ErrorCode } from './error-codes.js';
export { FrameError } from './frame-error.js';
export { AuthError } from './auth-error.js';
export { UnsendableValueError } from './unsendable-value-error.js';
export { ComputationError } from './computation-error.js';
export { OptionError } from './option-error.js';
