import { dispy } from '../schema/schema.js';

/** Bytes of an oversized JobReply's message kept to find its ids: they are its first fields. */
export const OVERSIZED_HEAD_BYTES = 1024;

/** Reads a varint at `at`; undefined when it runs past `bytes`. */
function varint(bytes: Buffer, at: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let shift = 0, i = at; i < bytes.length && shift < 64; shift += 7, i++) {
    value += (bytes[i]! & 0x7f) * 2 ** shift;
    if (bytes[i]! < 0x80) return { value, next: i + 1 };
  }
  return undefined;
}

/**
 * What a receiver takes instead of a JobReply frame too large for it (`KindLimit.replaceOversized`
 * of SESSION_LIMITS): a JobReply of the same job, Terminated, whose exception names the reply's
 * size and the limit. `head` is the start of the frame's message, where a sender puts the ids
 * (compute_id, field 1, and job_id, field 2, are encoded first). So one oversized reply, from an
 * older node or a hostile one, ends its own job and never the connection of the others.
 * Undefined when the head holds no job id: the frame is then refused as any oversized frame.
 */
export function replaceOversizedJobReply(head: Buffer, bytes: number, limit: number): Buffer | undefined {
  // The Frame's first field: job_reply (field 7, length-delimited), then its length.
  if (head[0] !== ((7 << 3) | 2)) return undefined;
  const length = varint(head, 1);
  if (!length) return undefined;
  let computeId = '';
  let jobId: number | undefined;
  for (let at = length.next; at < head.length && jobId === undefined;) {
    const tag = varint(head, at);
    if (!tag) return undefined;
    if (tag.value === ((1 << 3) | 2)) {
      const size = varint(head, tag.next);
      if (!size || size.next + size.value > head.length) return undefined;
      computeId = head.toString('utf8', size.next, size.next + size.value);
      at = size.next + size.value;
    } else if (tag.value === 2 << 3) {
      const id = varint(head, tag.next);
      if (!id) return undefined;
      jobId = id.value;
    } else {
      return undefined;
    }
  }
  if (jobId === undefined) return undefined;
  const exception =
    `dispy: the node's reply to this job is ${bytes} bytes, over this client's limit of ${limit} bytes for one reply; ` +
    'it was skipped (the node may be older than this client, which caps output and checks replies before sending)';
  return Buffer.from(dispy.Frame.encode({ jobReply: { computeId, jobId, status: dispy.JobStatus.TERMINATED, exception } }).finish());
}
