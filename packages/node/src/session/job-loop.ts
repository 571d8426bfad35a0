import { ErrorCode, dispy, type FramedSocket } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { JobOutcome } from '../execution/worker-pool.js';
import type { SessionComputations } from './computations.js';

export interface JobLoopOptions {
  channel: FramedSocket;
  computations: SessionComputations;
  logger: Logger;
  /** CPUs the node offers now (0: it takes no new jobs). */
  readonly nodeCpus: () => number;
}

/**
 * The client's jobs on this node: each Job frame goes to its computation's workers, a Cancel
 * stops one, and every job ends in exactly one JobReply (Provisional replies may come before).
 */
export class JobLoop {
  constructor(private readonly options: JobLoopOptions) {}

  /** A Job frame, with its encoded arguments as the attachment. */
  run(job: dispy.Job, args: Buffer[] | undefined): void {
    const { channel, computations, nodeCpus } = this.options;
    const refuse = (code: string, message: string) => channel.send({ error: { code, message, jobId: job.jobId } });
    if (!args) {
      refuse(ErrorCode.PROTOCOL, `job ${job.jobId} came without its arguments`);
      return;
    }
    const computation = computations.get(job.computeId);
    if (!computation) {
      refuse(ErrorCode.NO_COMPUTATION, `no computation ${job.computeId} here`);
      return;
    }
    if (nodeCpus() === 0) {
      // Service stopped (or the owner set 0 CPUs): the scheduler sends the job elsewhere.
      refuse(ErrorCode.NODE_STOPPED, 'the node takes no new jobs now');
      return;
    }
    computation.run(job, args);
  }

  cancel(cancel: dispy.Cancel): void {
    const { computeId, jobId } = cancel;
    if (!this.options.computations.get(computeId)?.cancel(Number(jobId))) {
      this.options.logger.debug(`cancel of job ${jobId}: not here (already done)`);
    }
  }

  /** A job of `computeId` ended. */
  reply(computeId: string, outcome: JobOutcome): void {
    const reply: dispy.IJobReply = {
      computeId,
      jobId: outcome.jobId,
      status: outcome.ok ? dispy.JobStatus.FINISHED : outcome.cancelled ? dispy.JobStatus.CANCELLED : dispy.JobStatus.TERMINATED,
      result: outcome.result,
      stdout: outcome.stdout,
      stderr: outcome.stderr,
      exception: outcome.exception ?? '',
      startTime: outcome.startTime,
      endTime: outcome.endTime,
      cpuTime: outcome.cpuTime,
    };
    this.options.channel.send({ jobReply: reply });
  }

  /** An intermediate result of a running job (dispyProvisionalResult). */
  provisional(computeId: string, jobId: number, result: Uint8Array): void {
    this.options.channel.send({ jobReply: { computeId, jobId, status: dispy.JobStatus.PROVISIONAL, result } });
  }

  /**
   * JobAck: the client has the replies of these jobs. This is the seam for result retention:
   * the faults issue keeps each reply sent by `reply` until its JobAck arrives here, so that a
   * client that reconnects gets the replies it missed. Nothing is retained yet.
   */
  acknowledged(_ack: dispy.JobAck): void {}
}
