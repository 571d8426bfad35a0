/*
 * For the property-based fuzz tests (`*.fuzz.test.ts`): the run parameters every property takes,
 * and arbitraries of frames of every kind, with hostile field values, shared by the protocol's,
 * the node's and the scheduler's fuzz tests. Frames are plain objects in the shape of
 * `dispy.IFrame` (this folder does not depend on @dispy/protocol): cast them where they are sent.
 *
 * Each property runs a fixed, bounded number of cases. The seed is random unless
 * `DISPY_FUZZ_SEED` is set; a failure prints the seed and the counterexample's path, and
 * `DISPY_FUZZ_SEED=<seed> DISPY_FUZZ_PATH=<path>` replays exactly that case.
 * `DISPY_FUZZ_RUNS=<factor>` multiplies every property's number of runs (a longer local hunt).
 */
import fc from 'fast-check';
import { afterEach, beforeEach, vi } from 'vitest';

export { fc };

/**
 * The parameters of one property: `numRuns` cases (times DISPY_FUZZ_RUNS), with the seed and
 * path from the environment when they are set.
 */
export function fuzzRuns<T>(numRuns: number, extra: fc.Parameters<T> = {}): fc.Parameters<T> {
  const factor = Number(process.env.DISPY_FUZZ_RUNS ?? 1);
  const seed = process.env.DISPY_FUZZ_SEED;
  const path = process.env.DISPY_FUZZ_PATH;
  return {
    numRuns: Math.max(1, Math.round(numRuns * (Number.isFinite(factor) && factor > 0 ? factor : 1))),
    ...(seed !== undefined && seed !== '' ? { seed: Number(seed) } : {}),
    ...(path !== undefined && path !== '' ? { path } : {}),
    ...extra,
  };
}

/** Every kind of frame, as the field names of `Frame`'s `kind` oneof. */
export const FRAME_KINDS = [
  'hello',
  'auth',
  'authResult',
  'setup',
  'setupReply',
  'job',
  'jobReply',
  'jobAck',
  'cancel',
  'pulse',
  'close',
  'closeReply',
  'error',
  'fileChunk',
  'setCpus',
  'setCpusReply',
  'nodeCpus',
  'fileWant',
  'fileDone',
  'fileKept',
  'reattach',
  'reattachReply',
  'nodeStatus',
  'jobEvent',
  'allocate',
  'allocateReply',
  'deallocate',
  'deallocateReply',
  'reclaim',
  'reclaimReply',
] as const;
export type FuzzFrameKind = (typeof FRAME_KINDS)[number];

/** A frame as a plain object: `{ [kind]: message, requestId }`. */
export type FuzzFrame = { requestId?: number } & { [kind in FuzzFrameKind]?: Record<string, unknown> };

/** Strings a hostile peer would try: paths out of a directory, names of files that matter, odd text. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('', 'c1', 'c2', 'prog.sh', 'data.txt', 'sub/data.txt') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '..',
      '../x',
      '../../etc/passwd',
      '/etc/passwd',
      '/tmp/x',
      'a/../../b',
      'a/./b',
      './',
      '.',
      'C:\\x',
      '..\\x',
      'x\u0000y',
      'node_modules/evil/index.js',
      'a//b',
      `${'a'.repeat(300)}`,
    ),
  },
  { weight: 2, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
);

export const u32: fc.Arbitrary<number> = fc.oneof(fc.constantFrom(0, 1, 2, 3, 0x7fffffff, 0xffffffff), fc.nat({ max: 0xffffffff }));
export const u64: fc.Arbitrary<number> = fc.oneof(fc.constantFrom(0, 1, 2, 3, 2 ** 32, Number.MAX_SAFE_INTEGER), fc.nat());
export const bytes: fc.Arbitrary<Uint8Array> = fc.oneof(fc.constantFrom(new Uint8Array(0)), fc.uint8Array({ maxLength: 48 }));
export const double: fc.Arbitrary<number> = fc.oneof(fc.constantFrom(0, -1, 0.5, 1e300, Infinity, NaN), fc.double());
const enumValue: fc.Arbitrary<number> = fc.integer({ min: -1, max: 5 });
const list = <T>(item: fc.Arbitrary<T>): fc.Arbitrary<T[]> => fc.array(item, { maxLength: 4 });
const record = <T extends Record<string, fc.Arbitrary<unknown>>>(fields: T) => fc.record(fields, { requiredKeys: [] });

const definition = record({ name: hostileString, source: hostileString });
const fileInfo = record({ name: hostileString, size: u64, sha256: bytes, mode: u32 });

/** Arbitraries of each kind's message, every field optional, with hostile values. */
export const MESSAGES: { [kind in FuzzFrameKind]: fc.Arbitrary<Record<string, unknown>> } = {
  hello: record({ version: u32, nonce: bytes, name: hostileString }),
  auth: record({ version: u32, nonce: bytes, mac: bytes, clientName: hostileString }),
  authResult: record({
    ok: fc.boolean(),
    mac: bytes,
    reason: hostileString,
    nodeName: hostileString,
    heartbeatInterval: double,
    zombieInterval: double,
  }),
  setup: record({
    computeId: hostileString,
    name: hostileString,
    kind: enumValue,
    source: hostileString,
    cpus: u32,
    destPath: hostileString,
    cleanup: fc.boolean(),
    pulseInterval: double,
    globals: list(hostileString),
    definitions: list(definition),
    values: bytes,
    files: list(fileInfo),
    setup: definition,
    setupArgs: bytes,
    cleanupFunction: definition,
    nodes: list(hostileString),
    reentrant: fc.boolean(),
    maxRetries: u32,
  }),
  setupReply: record({
    computeId: hostileString,
    ok: fc.boolean(),
    cpus: u32,
    error: hostileString,
    destPath: hostileString,
    heartbeatInterval: double,
  }),
  job: record({
    computeId: hostileString,
    jobId: u64,
    timeout: double,
    files: list(hostileString),
    definitions: list(definition),
    priority: double,
    pinKey: hostileString,
    pinHost: hostileString,
  }),
  jobReply: record({
    computeId: hostileString,
    jobId: u64,
    status: enumValue,
    result: bytes,
    stdout: hostileString,
    stderr: hostileString,
    exception: hostileString,
    startTime: double,
    endTime: double,
    cpuTime: double,
    nodeKey: hostileString,
    failed: fc.boolean(),
  }),
  jobAck: record({ jobIds: list(u64), computeId: hostileString }),
  cancel: record({ computeId: hostileString, jobId: u64 }),
  pulse: record({ busy: u32, availInfo: record({ cpu: double, memory: double, disk: double, swap: double }) }),
  close: record({ computeId: hostileString, terminatePending: fc.boolean(), nodeKey: hostileString }),
  closeReply: record({ computeId: hostileString, notServed: fc.boolean() }),
  error: record({
    code: fc.oneof(hostileString, fc.constantFrom('DISPY_ERR_PROTOCOL', 'DISPY_ERR_FILE')),
    message: hostileString,
    jobId: u64,
  }),
  fileChunk: record({
    transferId: u64,
    path: hostileString,
    offset: u64,
    last: fc.boolean(),
    sha256: bytes,
    size: u64,
    computeId: hostileString,
    mode: u32,
    jobId: u64,
    nodeKey: hostileString,
  }),
  setCpus: record({ computeId: hostileString, cpus: u32, nodeKey: hostileString }),
  setCpusReply: record({ computeId: hostileString, cpus: u32, error: hostileString, unchanged: fc.boolean() }),
  nodeCpus: record({ cpus: u32 }),
  fileWant: record({ computeId: hostileString, names: list(hostileString), error: hostileString, have: list(fileInfo) }),
  fileDone: record({ transferId: u64, ok: fc.boolean(), error: hostileString, code: hostileString, notServed: fc.boolean() }),
  fileKept: record({ computeId: hostileString, name: hostileString }),
  reattach: record({ computeId: hostileString }),
  reattachReply: record({
    computeId: hostileString,
    ok: fc.boolean(),
    error: hostileString,
    live: fc.boolean(),
    heldJobIds: list(u64),
    savedReplies: u32,
  }),
  nodeStatus: record({
    computeId: hostileString,
    event: enumValue,
    node: record({
      host: hostileString,
      port: u32,
      name: hostileString,
      cpus: u32,
      totalCpus: u32,
      platform: hostileString,
      availInfo: record({ cpu: double, memory: double, disk: double, swap: double }),
      tx: double,
      rx: double,
    }),
    lostJobIds: list(u64),
    why: hostileString,
  }),
  jobEvent: record({
    computeId: hostileString,
    jobId: u64,
    event: enumValue,
    nodeKey: hostileString,
    jobIds: list(u64),
    startTimes: list(u64),
  }),
  allocate: record({
    computeId: hostileString,
    nodes: list(
      record({
        host: hostileString,
        port: u32,
        cpus: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        files: list(fileInfo),
        setupArgs: bytes,
      }),
    ),
  }),
  allocateReply: record({ computeId: hostileString, ok: fc.boolean(), error: hostileString }),
  deallocate: record({ computeId: hostileString, nodeKey: hostileString }),
  deallocateReply: record({ computeId: hostileString, ok: fc.boolean() }),
  reclaim: record({ computeId: hostileString, jobIds: list(u64) }),
  reclaimReply: record({ computeId: hostileString, jobIds: list(u64) }),
};

/** A frame of one of `kinds` (default: every kind), with a request id that is often 0 and often small. */
export function frameOf(
  kinds: readonly FuzzFrameKind[] = FRAME_KINDS,
  requestIds: fc.Arbitrary<number> = requestId,
): fc.Arbitrary<FuzzFrame> {
  return fc
    .constantFrom(...kinds)
    .chain((kind) => fc.record({ kind: fc.constant(kind), message: MESSAGES[kind], requestId: requestIds }))
    .map(({ kind, message, requestId }) => ({ [kind]: message, requestId }));
}

export const requestId: fc.Arbitrary<number> = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 4 }), u32);

/** The kind of a FuzzFrame. */
export function kindOf(frame: FuzzFrame): FuzzFrameKind {
  return FRAME_KINDS.find((kind) => frame[kind] !== undefined)!;
}

/**
 * Bytes of a protobuf message of random fields: field numbers 1 to 40 (the message's own, other
 * kinds', unknown ones), each of a random wire type with a value of that type. Put in a frame as
 * a kind's message, it gives a frame of the right kind whose fields have the wrong types (a
 * varint where a string is expected, a string where a message is, ...).
 */
export const wrongTypedFields: fc.Arbitrary<Uint8Array> = fc
  .array(
    fc.record({
      field: fc.integer({ min: 1, max: 40 }),
      value: fc.oneof(
        fc.record({ type: fc.constant(0 as const), value: fc.oneof(fc.nat(), fc.constant(2 ** 53 - 1)) }),
        fc.record({ type: fc.constant(1 as const), value: fc.uint8Array({ minLength: 8, maxLength: 8 }) }),
        fc.record({ type: fc.constant(2 as const), value: fc.uint8Array({ maxLength: 24 }) }),
        fc.record({ type: fc.constant(5 as const), value: fc.uint8Array({ minLength: 4, maxLength: 4 }) }),
      ),
    }),
    { maxLength: 8 },
  )
  .map((fields) => {
    const out: number[] = [];
    for (const { field, value } of fields) {
      varint(out, field * 8 + value.type);
      if (value.type === 0) varint(out, value.value);
      else if (value.type === 2) {
        varint(out, value.value.length);
        out.push(...value.value);
      } else out.push(...value.value);
    }
    return Uint8Array.from(out);
  });

/** Appends a protobuf varint of `value` (at most 2^53). */
export function varint(out: number[], value: number): void {
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
}

/** The bytes of a Frame whose kind (field number `field`) holds `message` as it is. */
export function rawFrameMessage(field: number, message: Uint8Array, requestIdValue = 0): Uint8Array {
  const head: number[] = [];
  varint(head, field * 8 + 2);
  varint(head, message.length);
  const tail: number[] = [];
  if (requestIdValue > 0) {
    varint(tail, 32 * 8);
    varint(tail, requestIdValue);
  }
  return Buffer.concat([Uint8Array.from(head), message, Uint8Array.from(tail)]);
}

/** Cuts `bytes` into pieces at `points` (sorted, deduplicated, any out of range ignored). */
export function splitAt(bytes: Uint8Array, points: readonly number[]): Buffer[] {
  const cuts = [...new Set(points.filter((point) => point > 0 && point < bytes.length))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    pieces.push(Buffer.from(bytes.subarray(from, cut)));
    from = cut;
  }
  return pieces;
}

/** A change a corrupting channel makes to a byte stream. */
export type Mutation =
  | { op: 'flip'; at: number; mask: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'insert'; at: number; value: Uint8Array }
  | { op: 'delete'; at: number; count: number }
  | { op: 'truncate'; at: number };

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.constantFrom(0, 0x7f, 0x80, 0xff) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), value: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
);

/** Applies mutations to a copy of `bytes` (each position taken modulo the length at that point). */
export function mutate(bytes: Uint8Array, mutations: readonly Mutation[]): Buffer {
  let out = Buffer.from(bytes);
  for (const m of mutations) {
    if (out.length === 0) break;
    const at = m.at % out.length;
    switch (m.op) {
      case 'flip':
        out[at] = out[at]! ^ m.mask;
        break;
      case 'set':
        out[at] = m.value;
        break;
      case 'insert':
        out = Buffer.concat([out.subarray(0, at), m.value, out.subarray(at)]);
        break;
      case 'delete':
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + m.count)]);
        break;
      case 'truncate':
        out = out.subarray(0, at);
        break;
    }
  }
  return out;
}

/**
 * For a file of fuzzed session tests: fake timers in each test (setImmediate stays real, as the
 * channels cork writes with it), and every unhandled rejection recorded in the array returned,
 * which a property asserts empty.
 */
export function fakeTimersRecordingRejections(): unknown[] {
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown): void => void rejections.push(reason);
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    process.on('unhandledRejection', onRejection);
  });
  afterEach(() => {
    process.off('unhandledRejection', onRejection);
    vi.useRealTimers();
  });
  return rejections;
}
