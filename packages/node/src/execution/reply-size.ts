import { SESSION_LIMITS } from '@dispy/protocol';
import { DEFAULT_MAX_OUTPUT_BYTES, capText, formatBytes } from './output-limit.js';
import type { JobOutcome } from './worker-pool.js';

/** Bytes of a JobReply frame left for what is not the result or the texts: ids, times, tags, header. */
const REPLY_ROOM_BYTES = 64 * 1024;

/** Largest JobReply frame a client takes (the session's limit for the kind). */
export const MAX_REPLY_BYTES = SESSION_LIMITS.kinds.jobReply!.maxBytes;

/**
 * A job's outcome as it may be sent: unchanged when its result, stdout, stderr and exception fit
 * in one JobReply frame, with room for the rest of the frame. Otherwise the job ends Terminated:
 * its result is dropped, its texts cut to fit, and its exception says how large the reply would
 * have been and what the limit is. The client would refuse a larger reply; this way only this
 * job fails, never the connection that carries the others.
 */
export function fitReply(outcome: JobOutcome, maxReplyBytes = MAX_REPLY_BYTES): JobOutcome {
  const result = outcome.result?.length ?? 0;
  const stdout = Buffer.byteLength(outcome.stdout);
  const stderr = Buffer.byteLength(outcome.stderr);
  const exception = Buffer.byteLength(outcome.exception ?? '');
  const total = result + stdout + stderr + exception;
  const limit = maxReplyBytes - REPLY_ROOM_BYTES;
  if (total <= limit) return outcome;
  const parts = [`result ${formatBytes(result)}`, `stdout ${formatBytes(stdout)}`, `stderr ${formatBytes(stderr)}`];
  if (exception > 0) parts.push(`exception ${formatBytes(exception)}`);
  const why =
    `dispy: the job's reply is ${formatBytes(total)} (${parts.join(', ')}), over the limit of ${formatBytes(limit)} for one reply; ` +
    'its result was dropped and its output cut. Write large results to a file and send it with dispySendFile, ' +
    'or lower --max-output-size on the node';
  const texts = stdout + stderr + exception;
  // Without the result it may fit as it is; if not, each text keeps the default cap's worth.
  const cap = texts + Buffer.byteLength(why) + 2 <= limit ? 0 : DEFAULT_MAX_OUTPUT_BYTES;
  return {
    ...outcome,
    ok: false,
    result: undefined,
    stdout: capText(outcome.stdout, cap, 'stdout'),
    stderr: capText(outcome.stderr, cap, 'stderr'),
    exception: outcome.exception ? `${why}\n\n${capText(outcome.exception, cap, 'exception')}` : why,
  };
}
