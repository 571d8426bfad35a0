import path from 'node:path';
import { dispy, type FrameInit } from '@dispy/protocol';
import type { JobPin } from '../cluster/types.js';
import type { ClientLinkContext } from './client-link-context.js';
import { dropJobFiles, failWithFiles, jobDir } from './client-job-files.js';
import type { ClientComputation } from './kept-client-computations.js';

export interface ClientJobsOptions {
  /** The computations of the client's connection, by id. */
  computations: ReadonlyMap<string, ClientComputation>;
  submit: ClientLinkContext['submit'];
  cancel: ClientLinkContext['cancel'];
  send(frame: FrameInit): void;
}

/** A client's Job and Cancel frames: its jobs go to the scheduler, or end at once saying why not. */
export class ClientJobs {
  constructor(private readonly options: ClientJobsOptions) {}

  submit(job: dispy.Job, attachment: Buffer[] | undefined): void {
    const jobId = Number(job.jobId);
    const computation = this.options.computations.get(job.computeId);
    const fail = (why: string): void =>
      this.options.send({
        jobReply: { computeId: job.computeId, jobId, status: dispy.JobStatus.TERMINATED, exception: why, failed: true },
      });
    if (!computation?.added) return fail(`no computation ${job.computeId} is set up for this client at dispyscheduler`);
    if (computation.jobs.has(jobId)) return fail(`job ${jobId} of ${computation.name} was submitted already`);
    // Per-job files came before the Job frame, each answered with FileDone before the client sent it.
    const files = computation.jobFiles.get(jobId);
    if (job.files.length > 0) {
      if (files?.failed) return failWithFiles(computation, jobId, `its depends file could not be received: ${files.failed.message}`);
      const missing = job.files.find((name) => !files?.arrived.has(name));
      if (missing !== undefined) return failWithFiles(computation, jobId, `its depends file ${missing} did not arrive at dispyscheduler`);
    }
    const pin: JobPin | undefined = job.pinKey ? { key: job.pinKey } : job.pinHost ? { host: job.pinHost } : undefined;
    const submitted = this.options.submit({
      computeId: job.computeId,
      priority: Number.isFinite(job.priority) ? job.priority : 0,
      ref: { computeId: job.computeId, jobId },
      args: attachment && attachment.length === 1 ? attachment[0]! : Buffer.concat(attachment ?? []),
      pin,
      timeout: job.timeout > 0 ? job.timeout : undefined,
      definitions: job.definitions.length > 0 ? job.definitions : undefined,
      files: job.files.length > 0 ? job.files.map((name) => path.join(jobDir(computation, jobId), name)) : undefined,
    });
    computation.jobs.set(jobId, submitted);
  }

  /** Cancels a job of one of the connection's computations; false when it is not one (or has ended). */
  cancel(cancel: dispy.Cancel): boolean {
    const jobId = Number(cancel.jobId);
    const computation = this.options.computations.get(cancel.computeId);
    const job = computation?.jobs.get(jobId);
    if (!computation || !job) return false;
    const outcome = this.options.cancel(job);
    if (outcome === 'dequeued') {
      computation.jobs.delete(jobId);
      dropJobFiles(computation, jobId);
      computation.replies.ended({
        computeId: cancel.computeId,
        jobId,
        status: dispy.JobStatus.CANCELLED,
        exception: 'cancelled before it ran',
        failed: true,
      });
    }
    return outcome !== 'unknown';
  }
}
