/*
 * What the framing layer knows of the schema, by field number, so that it can judge a frame
 * from its first bytes and count its lists before the protobuf decoder allocates anything. The
 * tables are checked against dispy.proto and the generated code by frame-kinds.test.ts.
 */
import type { dispy } from '../schema/schema.js';

/** The kind of a frame: the name of the field of `Frame`'s `kind` oneof that it carries. */
export type FrameKind = NonNullable<dispy.Frame['kind']>;

/**
 * The field number of each kind in `Frame`. A frame's kind is its first field (protobufjs writes
 * the oneof before `request_id`, and peers must do the same), so its first tag, one or two
 * bytes, tells the receiver what it is reading.
 */
export const FRAME_KIND_FIELDS: Readonly<Record<FrameKind, number>> = {
  hello: 1,
  auth: 2,
  authResult: 3,
  setup: 4,
  setupReply: 5,
  job: 6,
  jobReply: 7,
  jobAck: 8,
  cancel: 9,
  pulse: 10,
  close: 11,
  closeReply: 12,
  error: 13,
  fileChunk: 14,
  setCpus: 15,
  setCpusReply: 16,
  nodeCpus: 17,
  fileWant: 18,
  fileDone: 19,
  fileKept: 20,
  reattach: 21,
  reattachReply: 22,
  nodeStatus: 23,
  jobEvent: 24,
  allocate: 25,
  allocateReply: 26,
  deallocate: 27,
  deallocateReply: 28,
  reclaim: 29,
  reclaimReply: 30,
};

/** The kinds by field number (`undefined` where a number is no kind). */
export const KIND_BY_FIELD: readonly (FrameKind | undefined)[] = (() => {
  const byField: (FrameKind | undefined)[] = [];
  for (const [kind, field] of Object.entries(FRAME_KIND_FIELDS) as [FrameKind, number][]) byField[field] = kind;
  return Array.from(byField);
})();

/** A repeated field of a kind's message. */
export interface RepeatedField {
  field: number;
  /** As errors name it: `jobAck.jobIds`. */
  name: string;
  /** A list of numbers, which proto3 packs: one occurrence of the field holds many entries. */
  packed: boolean;
}

/** The repeated fields of each kind's message (kinds not listed have none). */
export const REPEATED_FIELDS: Readonly<Partial<Record<FrameKind, readonly RepeatedField[]>>> = {
  setup: [
    { field: 9, name: 'setup.globals', packed: false },
    { field: 10, name: 'setup.definitions', packed: false },
    { field: 12, name: 'setup.files', packed: false },
    { field: 17, name: 'setup.nodes', packed: false },
  ],
  job: [
    { field: 5, name: 'job.files', packed: false },
    { field: 6, name: 'job.definitions', packed: false },
  ],
  jobAck: [{ field: 1, name: 'jobAck.jobIds', packed: true }],
  reattachReply: [{ field: 5, name: 'reattachReply.heldJobIds', packed: true }],
  nodeStatus: [{ field: 4, name: 'nodeStatus.lostJobIds', packed: true }],
  jobEvent: [
    { field: 5, name: 'jobEvent.jobIds', packed: true },
    { field: 6, name: 'jobEvent.startTimes', packed: true },
  ],
  reclaim: [{ field: 2, name: 'reclaim.jobIds', packed: true }],
  reclaimReply: [{ field: 2, name: 'reclaimReply.jobIds', packed: true }],
  allocate: [{ field: 2, name: 'allocate.nodes', packed: false }],
  fileWant: [
    { field: 2, name: 'fileWant.names', packed: false },
    { field: 4, name: 'fileWant.have', packed: false },
  ],
};
