import { ErrorCode, type FramedSocket, type dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
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
 * stops one, and every job ends in exactly one JobReply (Provisional replies may come before),
 * which its computation's entry (`KeptComputation`) sends and keeps until the client's JobAck.
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
    // Held before it runs: a job may end at once (a depends file of the wrong name).
    computations.entry(job.computeId)?.jobStarted(Number(job.jobId));
    computation.run(job, args);
  }

  cancel(cancel: dispy.Cancel): void {
    const { computeId, jobId } = cancel;
    if (!this.options.computations.get(computeId)?.cancel(Number(jobId))) {
      this.options.logger.debug(`cancel of job ${jobId}: not here (already done)`);
    }
  }

  /**
   * Reclaim: the client takes back jobs no worker has started, to run them on another node. The
   * starts not yet reported go first, then the answer names the jobs dropped (never run here).
   */
  async reclaim(reclaim: dispy.Reclaim, requestId: number): Promise<void> {
    const { computeId } = reclaim;
    const computation = this.options.computations.get(computeId);
    const jobIds = reclaim.jobIds.map(Number);
    const dropped = computation ? await computation.reclaim(jobIds).catch(() => []) : [];
    const entry = this.options.computations.entry(computeId);
    entry?.reclaimed(dropped);
    entry?.flushStarts();
    this.options.logger.debug(`reclaim of ${jobIds.length} job(s) of ${computeId}: ${dropped.length} dropped`);
    this.options.channel.send({ reclaimReply: { computeId, jobIds: dropped }, requestId });
  }

  /** JobAck: the client has the replies of these jobs; they are forgotten (in memory and on disk). */
  acknowledged(ack: dispy.JobAck): void {
    this.options.computations.acknowledged(ack);
  }
}
