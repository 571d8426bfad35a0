import { rm } from 'node:fs/promises';
import path from 'node:path';
import { dispy } from '@dispy/protocol';
import type { ClientComputation } from './kept-client-computations.js';

/** Where a job's own depends files land at dispyscheduler (removed when the job ends). */
export function jobDir(computation: ClientComputation, jobId: number): string {
  return path.join(computation.dir, 'jobs', String(jobId));
}

/** A job whose per-job files are of no more use (it ended, or never started): they are removed. */
export function dropJobFiles(computation: ClientComputation, jobId: number): void {
  if (!computation.jobFiles.delete(jobId)) return;
  rm(jobDir(computation, jobId), { recursive: true, force: true }).catch(() => undefined);
}

/** A job whose per-job files did not all arrive ends Terminated, saying why (its files are removed). */
export function failWithFiles(computation: ClientComputation, jobId: number, why: string): void {
  dropJobFiles(computation, jobId);
  computation.replies.ended({
    computeId: computation.computeId,
    jobId,
    status: dispy.JobStatus.TERMINATED,
    exception: why,
    failed: true,
  });
}
