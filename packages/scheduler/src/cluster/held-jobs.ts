import type { SchedulingEngine } from '../engine/scheduling-engine.js';
import { describeFiles } from './local-files.js';
import type { ComputationEvents, QueuedJob } from './types.js';

/** What readying held jobs needs of the scheduler. */
export interface HeldJobsContext<Ref> {
  readonly engine: SchedulingEngine<QueuedJob<Ref>>;
  /** The address of a connected node of this name, if any. */
  addressOfNode(name: string): string | undefined;
  /** Resolves a host name to its addresses. */
  resolve(name: string): Promise<string[]>;
  /** Forgets a job that will not run; false when it is no longer the scheduler's (cancelled meanwhile). */
  drop(job: QueuedJob<Ref>): boolean;
  /** The events of a computation, when it is added. */
  eventsOf(computeId: string): ComputationEvents<Ref> | undefined;
}

/**
 * Jobs the engine holds until they may run: their per-job files are described (name, size,
 * mode) and the host name they are pinned to is resolved, then they are released to their
 * queue. A job whose files cannot be read ends `terminated`, one whose name does not resolve
 * `cancelled`, both with `jobFailed`, which waits for the computation to be added when the job
 * was submitted before it.
 */
export class HeldJobs<Ref> {
  private waiters: Array<{ computeId: string; resolve: (events: ComputationEvents<Ref> | undefined) => void }> = [];

  constructor(private readonly context: HeldJobsContext<Ref>) {}

  /** Holds `job` and readies it. */
  hold(job: QueuedJob<Ref>, files: readonly string[], name: string | undefined): void {
    this.context.engine.hold(job);
    void this.ready(job, files, name);
  }

  /** A computation was added: jobs that failed before it hear of it now. */
  added(computeId: string, events: ComputationEvents<Ref>): void {
    const waiting = this.waiters.filter((waiter) => waiter.computeId === computeId);
    this.waiters = this.waiters.filter((waiter) => waiter.computeId !== computeId);
    for (const waiter of waiting) waiter.resolve(events);
  }

  /** The scheduler closes: nothing more is reported. */
  close(): void {
    for (const waiter of this.waiters.splice(0)) waiter.resolve(undefined);
  }

  private async ready(job: QueuedJob<Ref>, files: readonly string[], name: string | undefined): Promise<void> {
    try {
      job.files = await describeFiles(files);
    } catch (error) {
      const failed = (error as { path?: string }).path ?? '';
      await this.fail(job, 'terminated', `its depends file ${failed} could not be read: ${(error as Error).message}`);
      return;
    }
    if (name !== undefined) {
      try {
        const address = this.context.addressOfNode(name) ?? (await this.context.resolve(name))[0];
        if (address === undefined) throw new Error('no address');
        job.pinnedHost = address;
      } catch (error) {
        await this.fail(job, 'cancelled', `node ${name} could not be resolved: ${(error as Error).message}`);
        return;
      }
    }
    this.context.engine.release(job.uid);
  }

  private async fail(job: QueuedJob<Ref>, status: 'terminated' | 'cancelled', why: string): Promise<void> {
    const events =
      this.context.eventsOf(job.computeId) ??
      (await new Promise<ComputationEvents<Ref> | undefined>((resolve) => this.waiters.push({ computeId: job.computeId, resolve })));
    if (this.context.drop(job)) events?.jobFailed(job, status, why);
  }
}
