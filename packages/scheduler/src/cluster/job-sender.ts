import { open } from 'node:fs/promises';
import type { FrameInit } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { NodeLink } from './node-link.js';
import type { QueuedJob } from './types.js';

/** The attachment of a job whose arguments are gone (never expected: they last until it ends). */
const EMPTY_ARGUMENTS = new Uint8Array(0);

/** What sending a job with files needs of the scheduler. */
export interface JobSenderContext<Ref> {
  readonly logger: Logger;
  /** Whether `job` is still out to `link` on this dispatch (not requeued, dropped or ended). */
  stillSent(job: QueuedJob<Ref>, link: NodeLink, attempt: number): boolean;
  /** The job ends without running (its files could not be read, or it was cancelled meanwhile). */
  failed(job: QueuedJob<Ref>, link: NodeLink, status: 'terminated' | 'cancelled', why: string): void;
}

/**
 * Sends a job to a node. A job without per-job files goes at once. One with files goes after
 * them: each file is opened first (one that is gone ends the job `terminated`, naming it, before
 * anything is sent), then streamed, then the Job frame follows; a file that fails midway is
 * abandoned on the node (see `NodeLink.streamFile`), so the node never holds a job waiting for a
 * file that will not come.
 */
export function sendJob<Ref>(link: NodeLink, job: QueuedJob<Ref>, context: JobSenderContext<Ref>): void {
  if (!job.files?.length) {
    link.connection.send(jobFrame(job), job.args ?? EMPTY_ARGUMENTS);
    return;
  }
  void sendWithFiles(link, job, job.attempt, context);
}

async function sendWithFiles<Ref>(link: NodeLink, job: QueuedJob<Ref>, attempt: number, context: JobSenderContext<Ref>): Promise<void> {
  const files = job.files ?? [];
  // Files and job go on one connection: if it is lost meanwhile, the job stays out to the node
  // without having reached it, and the link's reconnection sends it again (see link-recovery.ts).
  const connection = link.connection;
  const stillSent = (): boolean => context.stillSent(job, link, attempt) && link.connection === connection && !connection.isClosed;
  const arrivals: Array<Promise<void>> = [];
  let current = files[0];
  try {
    for (const file of files) {
      current = file;
      await (await open(file.path, 'r')).close();
    }
    for (const file of files) {
      current = file;
      if (!stillSent()) return;
      arrivals.push((await link.streamFile(job.computeId, file, job.uid)).arrived);
    }
  } catch (error) {
    if (stillSent()) {
      context.failed(job, link, 'terminated', `its depends file ${current?.path} could not be sent: ${(error as Error).message}`);
    }
    return;
  }
  if (!stillSent()) return;
  if (job.cancelled) {
    context.failed(job, link, 'cancelled', 'cancelled before it ran');
    return;
  }
  link.connection.send(jobFrame(job), job.args ?? EMPTY_ARGUMENTS);
  // A file the node refused ends the job there (its reply says why); here it is only logged.
  for (const arrived of arrivals) {
    arrived.catch((error: Error) => context.logger.warn(`a depends file of job ${job.uid} did not reach ${link.key}: ${error.message}`));
  }
}

/** The Job frame; its arguments follow as the attachment, as they were encoded at submit. */
function jobFrame<Ref>(job: QueuedJob<Ref>): FrameInit {
  return {
    job: {
      computeId: job.computeId,
      jobId: job.uid,
      timeout: job.timeout ?? 0,
      files: job.files?.map((file) => file.name),
      definitions: job.definitions,
    },
  };
}
