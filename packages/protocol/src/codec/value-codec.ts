import { Packr } from 'msgpackr';
import { FrameError } from '../errors/frame-error.js';
import { checkSendable } from './check-sendable.js';

/*
 * Arguments, results and depends values cross the wire as msgpack with msgpackr's
 * structured-clone extensions (cycles, Map, Set, Date, RegExp, Error, typed arrays, BigInt).
 * The format does not depend on the V8 version, so saved results stay readable after upgrades.
 */
const packr = new Packr({ structuredClone: true, moreTypes: true, useBigIntExtension: true });

/**
 * Largest encoded value (an argument list, a result) that fits in one frame with the rest of
 * its message: the 64 MiB frame limit less 64 KiB.
 */
export const MAX_VALUE_BYTES = 64 * 1024 * 1024 - 64 * 1024;

/** Encodes one value; `what` names it in errors ("the result", "argument 2"). */
export function encodeValue(value: unknown, what = 'the value'): Buffer {
  checkSendable(value, what);
  return packr.pack(value);
}

/** Encodes a job's argument list, naming the argument (1-based) that cannot be sent. */
export function encodeArguments(args: readonly unknown[]): Buffer {
  for (let i = 0; i < args.length; i++) checkSendable(args[i], `argument ${i + 1}`);
  return packr.pack(args);
}

/** Decodes bytes written by encodeValue/encodeArguments; empty bytes decode to undefined. */
export function decodeValue(bytes: Uint8Array): unknown {
  if (bytes.length === 0) return undefined;
  try {
    return packr.unpack(bytes);
  } catch (error) {
    throw FrameError.malformed(`value does not decode: ${(error as Error).message}`, error);
  }
}
