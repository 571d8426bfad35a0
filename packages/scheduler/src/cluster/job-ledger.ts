import type { SchedulingEngine } from '../engine/scheduling-engine.js';
import type { IdleWatch } from './idle-watch.js';
import type { NodeLink } from './node-link.js';
import type { ComputationEvents, ComputationSpec, JobEndStatus, JobOutcome, NodeAllocator, NodeInfo, QueuedJob } from './types.js';

export interface JobLedgerOptions<Ref> {
  engine: SchedulingEngine<QueuedJob<Ref>>;
  /** closeNode calls waiting for a computation's last running job on a node: told when a job leaves a node. */
  idle: IdleWatch;
  /** The last job not ended has ended. */
  emptied(): void;
}

/**
 * The computations of a `JobScheduler` and their jobs not ended yet, and the ways a job ends or
 * goes back to the queue: each keeps the engine, the idle watch and the computation's events in step.
 */
export class JobLedger<Ref, Owner, Alloc extends NodeAllocator<Owner>> {
  readonly computations = new Map<string, ComputationSpec<Ref, Owner, Alloc>>();
  /** Jobs not ended yet, by uid. */
  readonly jobs = new Map<number, QueuedJob<Ref>>();

  constructor(private readonly options: JobLedgerOptions<Ref>) {}

  eventsOf(job: QueuedJob<Ref>): ComputationEvents<Ref> | undefined {
    return this.computations.get(job.computeId)?.events;
  }

  /** A job handed to `link` has its reply. */
  replied(job: QueuedJob<Ref>, link: NodeLink, outcome: JobOutcome): void {
    this.forget(job);
    this.options.engine.jobDone(link.key, job.uid, outcome.endTime - outcome.startTime);
    this.eventsOf(job)?.jobDone(job, outcome, link.info);
    this.options.idle.check(link.key);
  }

  /** A job handed to `link` ends without its reply. */
  end(job: QueuedJob<Ref>, status: Exclude<JobEndStatus, 'finished'>, why: string, link: NodeLink): void {
    this.forget(job);
    this.options.engine.jobDone(link.key, job.uid);
    this.eventsOf(job)?.jobFailed(job, status, why, link.info);
    this.options.idle.check(link.key);
  }

  requeue(job: QueuedJob<Ref>, from: NodeInfo): void {
    job.nodeKey = undefined;
    job.cancelled = undefined;
    this.options.engine.submit(job);
    this.eventsOf(job)?.jobRequeued(job, from);
  }

  /** The job has ended: the scheduler lets go of it and of its arguments. */
  forget(job: QueuedJob<Ref>): void {
    this.jobs.delete(job.uid);
    job.args = undefined;
    if (this.jobs.size === 0) this.options.emptied();
  }
}
