import { describe, expect, it } from 'vitest';
import { AuthError, ComputationError, DispyError, ErrorCode, FrameError, OptionError, UnsendableValueError } from '../index.js';

describe('the error model', () => {
  const made = {
    AuthError: new AuthError('a'),
    ComputationError: new ComputationError('c'),
    FrameError: FrameError.malformed('f'),
    OptionError: new OptionError('o'),
    UnsendableValueError: new UnsendableValueError('argument 1', 'a function'),
  };
  const classes = { AuthError, ComputationError, FrameError, OptionError, UnsendableValueError };

  it('each class recognises its own instances only, and DispyError all of them', () => {
    for (const [name, cls] of Object.entries(classes)) {
      for (const [other, error] of Object.entries(made)) {
        expect(cls.isInstance(error), `${name}.isInstance(new ${other})`).toBe(name === other);
      }
    }
    for (const error of Object.values(made)) expect(DispyError.isInstance(error)).toBe(true);
    expect(DispyError.isInstance(new Error('plain'))).toBe(false);
    expect(OptionError.isInstance(new DispyError(ErrorCode.OPTION, 'base'))).toBe(false);
    expect(DispyError.isInstance(null)).toBe(false);
  });

  it('has literal names and stable codes', () => {
    for (const [name, error] of Object.entries(made)) expect(error.name).toBe(name);
    expect(new DispyError(ErrorCode.CLOSED, 'x').name).toBe('DispyError');
    expect(made.AuthError.code).toBe('DISPY_ERR_AUTH');
    expect(made.FrameError.code).toBe(ErrorCode.FRAME_MALFORMED);
    expect(String(made.OptionError)).toBe('OptionError: o');
  });

  it('recognises instances made by another copy of the package (a marker, not instanceof)', () => {
    const foreign = Object.assign(new Error('from another copy'), {
      [Symbol.for('dispy.AuthError')]: true,
      [Symbol.for('dispy.DispyError')]: true,
    });
    expect(AuthError.isInstance(foreign)).toBe(true);
    expect(OptionError.isInstance(foreign)).toBe(false);
  });
});
