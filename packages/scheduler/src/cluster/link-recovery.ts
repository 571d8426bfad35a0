import { DispyError, ErrorCode, dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import { REPLY_TIMEOUT_MS } from '../session/node-connection.js';
import type { NodeLink } from './node-link.js';
import type { QueuedJob } from './types.js';

/** What link recovery needs of a job: its id on the wire, and whether it was cancelled. */
export type RecoverableJob = Pick<QueuedJob, 'uid' | 'cancelled'>;

/**
 * What taking a node's computations back needs of the scheduler (the JobScheduler's jobs), or of
 * a SharedJobCluster's `RemoteScheduler` taking its computation back from dispyscheduler.
 */
export interface RecoveryContext<Job extends RecoverableJob> {
  readonly logger: Logger;
  /** The jobs of a computation handed to the node and not ended (sent, or in flight when the link went). */
  sentTo(link: NodeLink, computeId: string): Job[];
  /** The node never got the job: it is sent again (it never started anywhere). */
  resend(job: Job, link: NodeLink): void;
  /** The node never got the job, and it was cancelled meanwhile: it ends cancelled. */
  cancelledBeforeSent(job: Job, link: NodeLink): void;
  /**
   * The node lost the computation (it answered not `ok` or not `live`): `jobs`, those not accounted
   * for, go by the dead-node rules, and the node stops serving the computation.
   */
  lostComputation(link: NodeLink, computeId: string, jobs: Job[], why: string): Promise<void>;
}

/**
 * Takes back, on a lost link's new connection, every computation that was set up there, and
 * settles each job the client had handed to the node: a Reattach per computation (a request with
 * its id); the node's ReattachReply says which jobs it still holds and how many replies it kept,
 * which follow and end their jobs as any reply does (a reply that came before the loss and comes
 * again finds its job ended and is only acknowledged). Then a job the node neither holds nor
 * replied for never reached it: it is sent again, so no job runs twice and none is lost. A node
 * that lost the computation (restarted without it) leaves its jobs to the dead-node rules.
 * Rejects when the connection fails meanwhile (the caller tries again on the next one).
 */
export async function reattachComputations<Job extends RecoverableJob>(link: NodeLink, context: RecoveryContext<Job>): Promise<void> {
  await Promise.all([...link.computeIds].map((computeId) => reattach(link, computeId, context)));
}

async function reattach<Job extends RecoverableJob>(link: NodeLink, computeId: string, context: RecoveryContext<Job>): Promise<void> {
  const node = `node ${link.info.name} (${link.key})`;
  // Counting starts before the request: the kept replies follow the answer in the same read.
  const count = link.countReplies(computeId, REPLY_TIMEOUT_MS);
  let answer: dispy.ReattachReply;
  try {
    answer = await link.connection.reattach(computeId);
  } catch (error) {
    count.stop();
    if (!(DispyError.isInstance(error) && error.code === ErrorCode.NO_COMPUTATION)) throw error;
    answer = dispy.ReattachReply.create({ computeId, ok: false, error: (error as Error).message });
  }
  const held = new Set(answer.heldJobIds.map(Number));
  if (answer.ok) await count.until(held, answer.savedReplies);
  else count.stop();
  const jobs = context.sentTo(link, computeId);
  if (!answer.ok || !answer.live) {
    const why = answer.error ? `: ${answer.error}` : answer.ok ? ': it is no longer set up there' : '';
    // Not a loss when every job had ended and its reply came back (the node closed the idle computation for another client).
    const what =
      answer.ok && jobs.length === 0
        ? `${node} is back; it closed the computation meanwhile, with every job of ours done`
        : `${node} lost the computation while the link was down${why}`;
    await context.lostComputation(link, computeId, jobs, what);
    return;
  }
  let resent = 0;
  for (const job of jobs) {
    if (held.has(job.uid)) {
      // A cancel sent while the link was down never arrived.
      if (job.cancelled) link.connection.send({ cancel: { computeId, jobId: job.uid } });
    } else if (job.cancelled) {
      context.cancelledBeforeSent(job, link);
    } else {
      context.resend(job, link);
      resent++;
    }
  }
  context.logger.debug(
    `${node} took computation ${computeId} back: ${held.size} jobs held, ${answer.savedReplies} replies resent, ${resent} jobs lost on the way sent again`,
  );
}
