/*
 * A walk over a frame's protobuf fields, before it is decoded: the decoder allocates an object or
 * a number per entry of a list, so one small frame could otherwise cost far more memory and time
 * than its bytes (a packed list of zeros is one byte per entry). The walk allocates nothing and
 * skips the bytes of strings, values and nested messages without reading them.
 */
import { FrameError } from '../errors/frame-error.js';
import { ErrorCode } from '../errors/error-codes.js';
import { KIND_BY_FIELD, REPEATED_FIELDS, type FrameKind, type RepeatedField } from './frame-kinds.js';

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/** Where the walk is in the message; module state, so that reading a varint allocates nothing. */
let at = 0;

/**
 * Checks a frame's message whose first field (its kind, `kind`) the decoder has already read
 * from its first bytes: no second kind follows it (a frame judged as one kind must not decode as
 * another), and no repeated field of the kind's message has more than `maxRepeated` entries.
 *
 * @throws FrameError `DISPY_ERR_FRAME_TOO_LARGE` naming the field whose entries are too many;
 *   `DISPY_ERR_FRAME_MALFORMED` when the message is not well-formed protobuf, or has two kinds.
 */
export function checkFrameMessage(message: Uint8Array, kind: FrameKind, maxRepeated: number): void {
  const end = message.length;
  at = 0;
  readVarint(message, end); // the kind's tag, read by the decoder already
  const length = readLength(message, end);
  const kindStart = at;
  at += length;
  const kindEnd = at;
  while (at < end) {
    const tag = readVarint(message, end);
    const field = Math.floor(tag / 8);
    if (field < KIND_BY_FIELD.length && KIND_BY_FIELD[field] !== undefined) {
      throw FrameError.malformed(`a second kind (${KIND_BY_FIELD[field]}) after ${kind}`);
    }
    skip(message, end, tag % 8);
  }
  const repeated = REPEATED_FIELDS[kind];
  if (repeated !== undefined) countEntries(message, kindStart, kindEnd, repeated, maxRepeated);
}

/** Counts the entries of each repeated field of the message in `[start, end)`. */
function countEntries(message: Uint8Array, start: number, end: number, repeated: readonly RepeatedField[], maxRepeated: number): void {
  // At most three repeated fields per kind: one counter each, no map.
  let count0 = 0;
  let count1 = 0;
  let count2 = 0;
  at = start;
  while (at < end) {
    const tag = readVarint(message, end);
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    const index = indexOf(repeated, field);
    if (index < 0) {
      skip(message, end, wireType);
      continue;
    }
    const entry = repeated[index]!;
    let entries = 1;
    if (entry.packed && wireType === LENGTH_DELIMITED) {
      // A packed list of varints: one entry per byte without the continuation bit.
      const length = readLength(message, end);
      const listEnd = at + length;
      entries = 0;
      for (let i = at; i < listEnd; i++) if (message[i]! < 0x80) entries++;
      at = listEnd;
    } else {
      skip(message, end, wireType);
    }
    const count = index === 0 ? (count0 += entries) : index === 1 ? (count1 += entries) : (count2 += entries);
    if (count > maxRepeated) {
      throw new FrameError(ErrorCode.FRAME_TOO_LARGE, `${entry.name} has more than ${maxRepeated} entries, the limit of one frame`);
    }
  }
}

function indexOf(repeated: readonly RepeatedField[], field: number): number {
  for (let i = 0; i < repeated.length; i++) if (repeated[i]!.field === field) return i;
  return -1;
}

/** Moves past the value of a field of `wireType`. */
function skip(message: Uint8Array, end: number, wireType: number): void {
  switch (wireType) {
    case VARINT:
      readVarint(message, end);
      return;
    case FIXED64:
      at += 8;
      break;
    case LENGTH_DELIMITED: {
      // Not `at += readLength(...)`: that would add to `at` as it was before the length was read.
      const length = readLength(message, end);
      at += length;
      break;
    }
    case FIXED32:
      at += 4;
      break;
    default:
      // Groups (3, 4) are not proto3; 6 and 7 are no wire type.
      throw FrameError.malformed(`wire type ${wireType}`);
  }
  if (at > end) throw FrameError.malformed('a field runs past the end of the message');
}

/** A length, which must leave the field within the message. */
function readLength(message: Uint8Array, end: number): number {
  const length = readVarint(message, end);
  if (length > end - at) throw FrameError.malformed('a field runs past the end of the message');
  return length;
}

/** Reads a varint at `at`: exact up to 2^53, which covers every tag and length. */
function readVarint(message: Uint8Array, end: number): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (at >= end) throw FrameError.malformed('a varint runs past the end of the message');
    const byte = message[at++]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return value;
    scale *= 128;
  }
  throw FrameError.malformed('a varint longer than 10 bytes');
}
