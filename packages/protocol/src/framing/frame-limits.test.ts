import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dispy } from '../schema/schema.js';
import { MAX_VALUE_BYTES } from '../codec/value-codec.js';
import { FILE_CHUNK_BYTES } from '../files/file-sender.js';
import { FrameDecoder } from './frame-decoder.js';
import { frameHeader } from './frame-header.js';
import { FRAME_KIND_FIELDS, KIND_BY_FIELD, REPEATED_FIELDS, type FrameKind } from './frame-kinds.js';
import { DEFAULT_MAX_FRAME_BYTES, HANDSHAKE_LIMITS, MAX_JOB_FRAME_BYTES, SESSION_LIMITS } from './frame-limits.js';

/*
 * The framing layer's tables of the schema are written by hand (it judges frames before the
 * protobuf decoder sees them): these tests hold them to dispy.proto and the generated code.
 */
const PROTO = readFileSync(new URL('../schema/dispy.proto', import.meta.url), 'utf8');
const KINDS = Object.keys(FRAME_KIND_FIELDS) as FrameKind[];
const camel = (name: string): string => name.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());

/** The body of `message name { ... }` in dispy.proto (no message there nests braces but `oneof`). */
function messageBody(name: string): string {
  const match = new RegExp(`\\nmessage ${name} \\{\\n([\\s\\S]*?)\\n\\}`).exec(PROTO);
  if (!match) throw new Error(`no message ${name} in dispy.proto`);
  return match[1]!;
}

/** The oneof fields of Frame: kind, its message type, its field number. */
const ONEOF = [...messageBody('Frame').matchAll(/^\s+(\w+) (\w+) = (\d+);/gm)]
  .map(([, type, name, field]) => ({ type: type!, kind: camel(name!), field: Number(field) }))
  .filter(({ kind }) => kind !== 'requestId');

describe('the kind tables', () => {
  it("give every kind of Frame's oneof its field number", () => {
    expect(ONEOF).toHaveLength(30);
    expect(Object.fromEntries(ONEOF.map(({ kind, field }) => [kind, field]))).toEqual(FRAME_KIND_FIELDS);
    ONEOF.forEach(({ kind, field }) => expect(KIND_BY_FIELD[field]).toBe(kind));
    expect(KIND_BY_FIELD.filter((kind) => kind !== undefined)).toHaveLength(30);
  });

  it('the generated encoder writes the kind first, before the request id, as the decoder reads it', () => {
    for (const kind of KINDS) {
      const encoded = dispy.Frame.encode({ [kind]: {}, requestId: 9 }).finish();
      const tag = encoded[0]! < 0x80 ? encoded[0]! : (encoded[0]! & 0x7f) | (encoded[1]! << 7);
      expect(tag, kind).toBe(FRAME_KIND_FIELDS[kind] * 8 + 2);
      const frames = new FrameDecoder({ ...SESSION_LIMITS, kinds: { [kind]: { maxBytes: 64 } } }).push(
        Buffer.concat([frameHeader(encoded.length), encoded]),
      );
      expect(frames.map((frame) => frame.kind)).toEqual([kind]);
      expect(dispy.Frame.decode(frames[0]!.message).requestId).toBe(9);
    }
  });

  it("list every repeated field of every kind's message, packed when it is a list of numbers", () => {
    const scalar = /^(u?int(32|64)|s?fixed(32|64)|sint(32|64)|double|float|bool|\w+Status|ComputationKind)$/;
    for (const { type, kind } of ONEOF) {
      const repeated = [...messageBody(type).matchAll(/^\s+repeated (\w+) (\w+) = (\d+);/gm)].map(([, fieldType, name, field]) => ({
        field: Number(field),
        name: `${kind}.${camel(name!)}`,
        packed: scalar.test(fieldType!),
      }));
      expect(REPEATED_FIELDS[kind as FrameKind] ?? [], kind).toEqual(repeated);
    }
  });
});

describe('HANDSHAKE_LIMITS', () => {
  it('accepts only the handshake frames, of at most 1 KiB, none with an attachment', () => {
    expect(Object.keys(HANDSHAKE_LIMITS.kinds).sort()).toEqual(['auth', 'authResult', 'error', 'hello']);
    expect(HANDSHAKE_LIMITS.maxFrameBytes).toBe(1024);
    for (const limit of Object.values(HANDSHAKE_LIMITS.kinds)) expect(limit).toEqual({ maxBytes: 1024 });
  });

  it('leaves room for the largest handshake frames this release sends', () => {
    const longest = 'n'.repeat(255); // a host name
    const frames: dispy.IFrame[] = [
      { hello: { version: 3, nonce: Buffer.alloc(16) } },
      { auth: { version: 3, nonce: Buffer.alloc(16), mac: Buffer.alloc(32), clientName: longest } },
      { authResult: { ok: false, mac: Buffer.alloc(32), reason: "the client's secret does not match the node's" } },
      { authResult: { ok: true, mac: Buffer.alloc(32), nodeName: longest } },
      // FramedSocket cuts the message of an Error it sends to 300 characters, 3 bytes each at most.
      { error: { code: 'DISPY_ERR_FRAME_MALFORMED', message: '\u20ac'.repeat(300) } },
    ];
    for (const frame of frames) expect(dispy.Frame.encode(frame).finish().length).toBeLessThanOrEqual(1024);
  });
});

describe('SESSION_LIMITS', () => {
  it("accepts every kind, the handshake's with its 1 KiB, attachments only on Job and FileChunk", () => {
    expect(Object.keys(SESSION_LIMITS.kinds).sort()).toEqual([...KINDS].sort());
    for (const kind of ['hello', 'auth', 'authResult'] as const) expect(SESSION_LIMITS.kinds[kind]).toEqual({ maxBytes: 1024 });
    expect(SESSION_LIMITS.kinds.error!.maxBytes).toBe(64 * 1024);
    const attached = Object.entries(SESSION_LIMITS.kinds).filter(([, limit]) => limit.attachment === true);
    expect(attached.map(([kind]) => kind).sort()).toEqual(['fileChunk', 'job']);
    expect(SESSION_LIMITS.maxFrameBytes).toBe(DEFAULT_MAX_FRAME_BYTES);
    for (const limit of Object.values(SESSION_LIMITS.kinds)) expect(limit.maxBytes).toBeLessThanOrEqual(SESSION_LIMITS.maxFrameBytes);
  });

  it('leaves room for a job with the largest arguments, and for a file chunk', () => {
    expect(SESSION_LIMITS.kinds.job!.maxBytes).toBe(MAX_JOB_FRAME_BYTES);
    const job = dispy.Frame.encode({ job: { computeId: 'c'.repeat(64), jobId: Number.MAX_SAFE_INTEGER, timeout: 1.5 } }).finish();
    expect(job.length + MAX_VALUE_BYTES).toBeLessThanOrEqual(MAX_JOB_FRAME_BYTES);
    const chunk = dispy.Frame.encode({
      fileChunk: {
        transferId: 2 ** 40,
        path: 'p'.repeat(4096),
        offset: 2 ** 50,
        last: true,
        sha256: Buffer.alloc(32),
        size: 2 ** 50,
        computeId: 'c'.repeat(64),
        mode: 0o100755,
        jobId: 2 ** 50,
      },
    }).finish();
    expect(chunk.length + FILE_CHUNK_BYTES).toBeLessThanOrEqual(SESSION_LIMITS.kinds.fileChunk!.maxBytes);
  });

  it('leaves room for the control frames this release sends', () => {
    const id = 'c'.repeat(64);
    const big = 2 ** 50;
    const frames: dispy.IFrame[] = [
      { cancel: { computeId: id, jobId: big }, requestId: 2 ** 32 - 1 },
      { pulse: { busy: 2 ** 32 - 1, availInfo: { cpu: 1.5, memory: 1.5, disk: 1.5, swap: 1.5 } } },
      { setCpus: { computeId: id, cpus: 2 ** 32 - 1 }, requestId: 2 ** 32 - 1 },
      { nodeCpus: { cpus: 2 ** 32 - 1 } },
      { close: { computeId: id, terminatePending: true }, requestId: 2 ** 32 - 1 },
      { closeReply: { computeId: id }, requestId: 2 ** 32 - 1 },
      { fileKept: { computeId: id, name: 'n'.repeat(4096) } },
      { fileDone: { transferId: big, ok: false, error: `ENOENT: ${'n'.repeat(4096)}` } },
      { setCpusReply: { computeId: id, cpus: 1, error: `no computation ${id} here` }, requestId: 2 ** 32 - 1 },
    ];
    for (const frame of frames) {
      const kind = Object.keys(frame).find((key) => key !== 'requestId') as FrameKind;
      expect(dispy.Frame.encode(frame).finish().length, kind).toBeLessThanOrEqual(SESSION_LIMITS.kinds[kind]!.maxBytes);
    }
  });

  it('cannot be changed by a caller', () => {
    expect(Object.isFrozen(SESSION_LIMITS)).toBe(true);
    expect(Object.isFrozen(SESSION_LIMITS.kinds)).toBe(true);
    expect(Object.isFrozen(SESSION_LIMITS.kinds.job)).toBe(true);
    expect(Object.isFrozen(HANDSHAKE_LIMITS.kinds.auth)).toBe(true);
  });
});
