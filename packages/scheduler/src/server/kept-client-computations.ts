import { rm } from 'node:fs/promises';
import { dispy } from '@dispy/protocol';
import { KeptReplies, scanSavedReplies, type Logger, type ReplySink } from '@dispy/protocol/internal';
import type { SchedulerJob } from '../cluster/types.js';

/** The longest delay a Node timer takes (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Seconds dispyscheduler keeps a computation going once its client's link is lost, by default. */
export const DEFAULT_CLIENT_GRACE_SECONDS = 60;

/** What dispyscheduler keeps per job of a client: its computation, and its id on the client's connection. */
export interface ClientJobRef {
  readonly computeId: string;
  readonly jobId: number;
}

/** A client's computation as the scheduler holds it for the client; it outlives the connection that set it up. */
export interface ClientComputation {
  readonly computeId: string;
  readonly name: string;
  readonly dir: string;
  /** Jobs not ended yet, by the client's job id. */
  readonly jobs: Map<number, SchedulerJob<ClientJobRef>>;
  /** Depends files still to arrive before the computation is added. */
  waiting?: Set<string>;
  /** A depends file arrived (or failed, or the computation was closed meanwhile: `error`). */
  arrived?: (name: string, error?: Error) => void;
  /** Added to the scheduler (set up, and taking jobs); false while its files arrive, and once it was closed for a client gone. */
  added: boolean;
  /** Per-job depends files that arrived (or failed), by the client's job id, until the job ends. */
  readonly jobFiles: Map<number, { arrived: Set<string>; failed?: Error }>;
  /** Final replies not acknowledged by the client (on disk while it is away). */
  readonly replies: KeptReplies;
  /** Why it was closed for a client gone: the jobs it ends are Terminated for this reason. */
  closedBecause?: string;
  /** The client's connection that holds it now (none while its link is lost). */
  link?: ReplySink & { letGo(computation: ClientComputation): void };
}

export interface KeptClientComputationsOptions {
  /** The scheduler's directory: saved replies go to `saved-replies/<compute id>/` in it. */
  dir: string;
  /** How long a computation goes on once its client's link is lost (ms). */
  graceMs: number;
  /** How long the replies of a client gone are kept (ms, from when it was last heard). */
  zombieMs: number;
  logger: Logger;
  /** Closes a computation at the scheduler: its queued jobs dropped, its running jobs terminated. */
  closeComputation(computeId: string): Promise<void>;
}

/**
 * The computations of dispyscheduler's clients, by id, whichever connection holds them: when a
 * client's link is lost, its computations go on for the grace period (their jobs run, their
 * replies are saved to disk, `KeptReplies`), for the client to reconnect and take them back
 * (Reattach). A client not back in time is gone: its computations are closed (running jobs
 * terminated, so its share of the nodes goes to the others), and the replies it had not
 * acknowledged stay on disk until the zombie interval has passed since it was last heard, for
 * `recoverJobs`. They outlive a restart of the scheduler (`load`).
 */
export class KeptClientComputations {
  private readonly kept = new Map<string, ClientComputation>();
  private readonly timers = new Map<ClientComputation, NodeJS.Timeout>();
  private readonly work = new Set<Promise<void>>();
  private stopped = false;

  constructor(private readonly options: KeptClientComputationsOptions) {}

  /** Seconds a client may be away and take its computations back. */
  get graceSeconds(): number {
    return this.options.graceMs / 1000;
  }

  get(computeId: string): ClientComputation | undefined {
    return this.kept.get(computeId);
  }

  /** Computations whose client's link is lost, still running or known only from their replies. */
  detached(): ClientComputation[] {
    return [...this.kept.values()].filter((computation) => !computation.link);
  }

  /** The replies of a computation, kept under the scheduler's directory. */
  newReplies(computeId: string): KeptReplies {
    return new KeptReplies(this.options.dir, computeId, this.options.logger);
  }

  /** A computation was set up (added to the scheduler). */
  register(computation: ClientComputation): void {
    this.kept.set(computation.computeId, computation);
  }

  /** Forgets a computation (its holder closed it). */
  remove(computation: ClientComputation): void {
    this.disarm(computation);
    if (this.kept.get(computation.computeId) === computation) this.kept.delete(computation.computeId);
  }

  /** Its client's link is lost: its jobs go on for the grace period, its replies go to disk. */
  detach(computation: ClientComputation, lastHeard: number): void {
    computation.link = undefined;
    computation.replies.detach(lastHeard, lastHeard + this.options.zombieMs);
    if (!computation.added) {
      this.arm(computation, lastHeard + this.options.zombieMs, () => this.expire(computation));
      return;
    }
    this.arm(computation, Date.now() + this.options.graceMs, () => this.graceOver(computation, lastHeard));
  }

  /** A client took it back (Reattach): no timer runs while it is attached. */
  attached(computation: ClientComputation): void {
    this.disarm(computation);
  }

  /**
   * At start: finds the replies an earlier run saved. Those expired, and folders that are not
   * whole, are deleted; the others wait for `recoverJobs` (or their client) until they expire.
   */
  async load(): Promise<void> {
    const { logger, dir } = this.options;
    const now = Date.now();
    for (const { dir: folder, meta } of await scanSavedReplies(dir)) {
      if (!meta || meta.expires <= now || this.kept.has(meta.computeId)) {
        await rm(folder, { recursive: true, force: true }).catch((error: Error) => logger.warn(`deleting ${folder}: ${error.message}`));
        continue;
      }
      const replies = this.newReplies(meta.computeId);
      await replies.loadSaved();
      if (!replies.hasReplies) {
        await replies.forget();
        continue;
      }
      const computation: ClientComputation = {
        computeId: meta.computeId,
        name: meta.computeId,
        dir: '',
        jobs: new Map(),
        added: false,
        jobFiles: new Map(),
        replies,
      };
      this.register(computation);
      this.arm(computation, meta.expires, () => this.expire(computation));
      logger.info(`computation ${meta.computeId}: replies saved for a client gone, kept until ${new Date(meta.expires).toISOString()}`);
    }
  }

  /**
   * The scheduler stops: replies of jobs that end now are not kept (they were cut short, not
   * done); resolves once every reply being saved is on disk. The saved ones stay for the next run.
   */
  async close(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const computation of this.kept.values()) computation.replies.dropping = true;
    while (this.work.size > 0) await Promise.allSettled([...this.work]);
    await Promise.all([...this.kept.values()].map((computation) => computation.replies.settled()));
  }

  /**
   * The grace period passed without the client: the computation is closed (its running jobs
   * terminated, their replies kept as Terminated), and its replies wait until they expire.
   */
  private async graceOver(computation: ClientComputation, lastHeard: number): Promise<void> {
    if (this.kept.get(computation.computeId) !== computation || computation.link) return;
    const { logger, zombieMs } = this.options;
    const { computeId, name } = computation;
    const pending = computation.jobs.size;
    logger.warn(
      `the client of computation ${name} (${computeId}) was not back within ${this.graceSeconds} s; closing it` +
        (pending > 0 ? ` and terminating its ${pending} job${pending === 1 ? '' : 's'} not done` : ''),
    );
    computation.added = false;
    const why = `its client was away longer than dispyscheduler's grace period (${this.graceSeconds} s); the computation was closed`;
    computation.closedBecause = why;
    await this.options.closeComputation(computeId).catch((error: Error) => logger.warn(`closing ${computeId}: ${error.message}`));
    for (const jobId of [...computation.jobs.keys()].sort((a, b) => a - b)) {
      computation.replies.ended({ computeId, jobId, status: dispy.JobStatus.TERMINATED, exception: why, failed: true });
    }
    computation.jobs.clear();
    computation.jobFiles.clear();
    if (computation.dir) await rm(computation.dir, { recursive: true, force: true }).catch(() => undefined);
    await computation.replies.settled();
    if (this.kept.get(computation.computeId) !== computation || computation.link) return;
    if (!computation.replies.hasReplies) {
      this.kept.delete(computeId);
      await computation.replies.forget();
      return;
    }
    logger.info(
      `computation ${name} (${computeId}): the replies its client did not collect are kept until ${new Date(lastHeard + zombieMs).toISOString()}`,
    );
    this.arm(computation, lastHeard + zombieMs, () => this.expire(computation));
  }

  private async expire(computation: ClientComputation): Promise<void> {
    if (this.kept.get(computation.computeId) !== computation || computation.link) return;
    this.options.logger.warn(`computation ${computation.computeId}: its replies expired (zombie interval); deleting them`);
    this.kept.delete(computation.computeId);
    await computation.replies.forget();
  }

  private arm(computation: ClientComputation, at: number, then: () => Promise<void>): void {
    this.disarm(computation);
    if (this.stopped) return;
    const timer = setTimeout(
      () => {
        this.timers.delete(computation);
        if (Date.now() < at) {
          this.arm(computation, at, then);
          return;
        }
        const work: Promise<void> = then()
          .catch((error: Error) => this.options.logger.error(`computation ${computation.computeId}: ${error.message}`))
          .finally(() => this.work.delete(work));
        this.work.add(work);
      },
      Math.min(Math.max(0, at - Date.now()), MAX_TIMER_MS),
    );
    timer.unref();
    this.timers.set(computation, timer);
  }

  private disarm(computation: ClientComputation): void {
    clearTimeout(this.timers.get(computation));
    this.timers.delete(computation);
  }
}
