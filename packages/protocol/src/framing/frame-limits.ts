import type { FrameKind } from './frame-kinds.js';

/** What a connection accepts of one kind of frame. */
export interface KindLimit {
  /** Largest frame of this kind, message and attachment together, in bytes. */
  readonly maxBytes: number;
  /** Whether a frame of this kind may carry an attachment (default: no). */
  readonly attachment?: boolean;
  /**
   * A frame of this kind over `maxBytes` is skipped rather than refused: its bytes are dropped as
   * they arrive (never buffered), and the receiver gets what the decoder makes of its head instead
   * (see FrameDecoder: for a `jobReply`, a Terminated reply of that job). Default: refused, which
   * ends the connection.
   */
  readonly skipOversized?: boolean;
}

/**
 * What a connection accepts, judged as each frame arrives and before its body is buffered (see
 * FrameDecoder). A connection starts with HANDSHAKE_LIMITS and switches to SESSION_LIMITS once
 * its peer has proved the secret (`FramedSocket.setLimits`).
 */
export interface FrameLimits {
  /** When these limits apply, as refusals say it: `a job frame is not accepted before authentication`. */
  readonly stage: string;
  /** Largest frame of any kind, message and attachment together: checked from the header alone. */
  readonly maxFrameBytes: number;
  /** The kinds accepted, each with its own limit; a frame of any other kind is refused. */
  readonly kinds: Readonly<Partial<Record<FrameKind, KindLimit>>>;
  /** Most entries in one repeated field of a frame (`jobAck.jobIds`, `setup.files`, ...). */
  readonly maxRepeated: number;
}

/** Freezes limits shared by every connection, and the kinds' limits in them. */
function frozen(limits: FrameLimits): FrameLimits {
  for (const limit of Object.values(limits.kinds)) Object.freeze(limit);
  Object.freeze(limits.kinds);
  return Object.freeze(limits);
}

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * Largest frame of a session: 64 MiB. A job's arguments and result, and a setup's `depends`
 * values, are single values of at most MAX_VALUE_BYTES (64 MiB less 64 KiB, left for the rest of
 * their frame); files travel in chunks of 4 MiB.
 */
export const DEFAULT_MAX_FRAME_BYTES = 64 * MiB;

/** Largest `Job` frame: its arguments (the attachment) are one value of at most MAX_VALUE_BYTES. */
export const MAX_JOB_FRAME_BYTES = DEFAULT_MAX_FRAME_BYTES;

/**
 * Most entries in one repeated field of a session's frame. The longest lists a legitimate peer
 * sends are the acknowledgements of one event-loop turn (`JobAck.jobIds`: even 2 MiB of replies
 * of the smallest jobs, ~55 bytes each, make about 38,000) and the files of a computation's
 * `depends` (`Setup.files`, `FileWant.names`).
 */
export const MAX_REPEATED_ENTRIES = 65_536;

/** Bytes of the largest varint (a uint64): a bound on one entry of a packed list of numbers. */
const MAX_VARINT_BYTES = 10;

/** Frames of a few numbers and a compute id (`Cancel`, `Pulse`, `SetCpus`, `NodeCpus`, ...): tens of bytes. */
const CONTROL_FRAME_BYTES = 1 * KiB;
/** Frames that name a file (a path has at most 4 KiB) or carry a one-line error (`FileKept`, `FileDone`, `SetCpusReply`). */
const NOTE_FRAME_BYTES = 16 * KiB;
/** Frames that may carry an error with its stack trace (`Error`, `SetupReply`). */
const REPORT_FRAME_BYTES = 64 * KiB;
/**
 * A `FileChunk`: at most 4 MiB of data (FILE_CHUNK_BYTES, checked by a test) and a message that
 * names the file (a path of at most 4 KiB, a compute id, a sha256).
 */
const FILE_CHUNK_FRAME_BYTES = 4 * MiB + 64 * KiB;
/** The handshake's frames: a version, a 16-byte nonce, a 32-byte MAC, a host name, a short reason. */
const HANDSHAKE_FRAME_BYTES = 1 * KiB;

/**
 * Before the peer has proved the secret: only the handshake's own frames (`Hello`, `Auth`,
 * `AuthResult`, and an `Error` that refuses the connection), each of at most 1 KiB, none with an
 * attachment. An unauthenticated peer thus makes the receiver hold at most 1 KiB and decode
 * nothing else, whatever it claims in a header.
 */
export const HANDSHAKE_LIMITS: FrameLimits = frozen({
  stage: 'before authentication',
  maxFrameBytes: HANDSHAKE_FRAME_BYTES,
  kinds: {
    hello: { maxBytes: HANDSHAKE_FRAME_BYTES },
    auth: { maxBytes: HANDSHAKE_FRAME_BYTES },
    authResult: { maxBytes: HANDSHAKE_FRAME_BYTES },
    error: { maxBytes: HANDSHAKE_FRAME_BYTES },
  },
  // No handshake frame has a repeated field.
  maxRepeated: 0,
});

/**
 * After authentication, in either direction: attachments only on `Job` (its arguments) and
 * `FileChunk` (the file's bytes). Kinds that carry user values or lists of files may use the whole
 * 64 MiB; control frames a few KiB at most, so a peer's bug shows as a refusal instead of a frozen
 * process. The handshake's frames keep their 1 KiB: a connection that never switches (the default
 * of FramedSocket) still reads a handshake, and its session refuses one out of turn.
 */
export const SESSION_LIMITS: FrameLimits = frozen({
  stage: 'after authentication',
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  kinds: {
    // Function source, `depends` definitions, values (one value) and the list of files.
    setup: { maxBytes: DEFAULT_MAX_FRAME_BYTES },
    // The node's answer to a setup: the names of the files it wants and of those it has.
    fileWant: { maxBytes: DEFAULT_MAX_FRAME_BYTES },
    job: { maxBytes: MAX_JOB_FRAME_BYTES, attachment: true },
    // The result (one value), and the job's stdout and stderr.
    jobReply: { maxBytes: DEFAULT_MAX_FRAME_BYTES },
    fileChunk: { maxBytes: FILE_CHUNK_FRAME_BYTES, attachment: true },
    setupReply: { maxBytes: REPORT_FRAME_BYTES },
    fileKept: { maxBytes: NOTE_FRAME_BYTES },
    fileDone: { maxBytes: NOTE_FRAME_BYTES },
    setCpusReply: { maxBytes: NOTE_FRAME_BYTES },
    // Its entries are numbers, at most 10 bytes each; the frame's own fields take a few more.
    jobAck: { maxBytes: MAX_REPEATED_ENTRIES * MAX_VARINT_BYTES + CONTROL_FRAME_BYTES },
    reattach: { maxBytes: CONTROL_FRAME_BYTES },
    // The ids of the jobs the node holds for the computation, and an error.
    reattachReply: { maxBytes: MAX_REPEATED_ENTRIES * MAX_VARINT_BYTES + REPORT_FRAME_BYTES },
    cancel: { maxBytes: CONTROL_FRAME_BYTES },
    // dispyscheduler -> SharedJobCluster: a node's description and the jobs lost with it, and a reason.
    nodeStatus: { maxBytes: MAX_REPEATED_ENTRIES * MAX_VARINT_BYTES + REPORT_FRAME_BYTES },
    // A batch of jobs started (RUNNING): ids and start times, numbers of at most 10 bytes each.
    jobEvent: { maxBytes: 2 * MAX_REPEATED_ENTRIES * MAX_VARINT_BYTES + CONTROL_FRAME_BYTES },
    // Jobs to take back from a node, and those it dropped.
    reclaim: { maxBytes: MAX_REPEATED_ENTRIES * MAX_VARINT_BYTES + CONTROL_FRAME_BYTES },
    reclaimReply: { maxBytes: MAX_REPEATED_ENTRIES * MAX_VARINT_BYTES + CONTROL_FRAME_BYTES },
    pulse: { maxBytes: CONTROL_FRAME_BYTES },
    setCpus: { maxBytes: CONTROL_FRAME_BYTES },
    nodeCpus: { maxBytes: CONTROL_FRAME_BYTES },
    close: { maxBytes: CONTROL_FRAME_BYTES },
    closeReply: { maxBytes: CONTROL_FRAME_BYTES },
    // SharedJobCluster -> dispyscheduler: ways of choosing nodes, with their files' names and setup arguments (one value).
    allocate: { maxBytes: DEFAULT_MAX_FRAME_BYTES },
    allocateReply: { maxBytes: REPORT_FRAME_BYTES },
    deallocate: { maxBytes: CONTROL_FRAME_BYTES },
    deallocateReply: { maxBytes: CONTROL_FRAME_BYTES },
    ...HANDSHAKE_LIMITS.kinds,
    error: { maxBytes: REPORT_FRAME_BYTES },
  },
  maxRepeated: MAX_REPEATED_ENTRIES,
});

/**
 * What a client accepts from a node: SESSION_LIMITS, except that a `JobReply` too large is
 * skipped (its bytes dropped as they arrive) and stands for a Terminated reply of its job, which
 * names the size and the limit, instead of ending the connection and every other job on it. Such
 * a reply comes only from an older or a hostile node: a node caps what it sends. A frame of no
 * attachment past `maxFrameBytes` is judged once its first tag has arrived (its kind decides),
 * not from its header alone; it is still never buffered.
 */
export const CLIENT_SESSION_LIMITS: FrameLimits = frozen({
  ...SESSION_LIMITS,
  kinds: { ...SESSION_LIMITS.kinds, jobReply: { ...SESSION_LIMITS.kinds.jobReply!, skipOversized: true } },
});
