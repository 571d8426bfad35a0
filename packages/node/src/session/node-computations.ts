import { rm } from 'node:fs/promises';
import { scanSavedReplies, type Logger } from '@dispy/protocol/internal';
import { KeptComputation } from './kept-computation.js';

/** The longest delay a Node timer takes (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface NodeComputationsOptions {
  destPathPrefix: string;
  /** How long a computation is kept for a client that is not back (ms, from when it was last heard). */
  zombieIntervalMs: number;
  logger: Logger;
  /** The jobs of a computation whose client is away have ended: `owner` may not hold the node any more. */
  release(owner: unknown): void;
  /** A computation got its first job since it was idle, or ended its last (the CPUs' shares change). */
  activity?(): void;
}

/**
 * Every computation this node keeps, by id, whichever connection set it up: those with a client
 * attached, those whose client's link was lost (detached: their jobs go on, their replies are
 * saved to disk), and those known only from replies saved on disk (by this run or an earlier
 * one of the node). A computation whose client is not back within the zombie interval is
 * closed, its saved replies deleted.
 */
export class NodeComputations {
  private readonly kept = new Map<string, KeptComputation>();
  private readonly timers = new Map<KeptComputation, NodeJS.Timeout>();
  /** Computations left by lost clients being closed now (for a new client, or expired), by id. */
  private readonly closing = new Map<string, Promise<void>>();
  /** Computations admitted and still being set up (by id: whether each is exclusive). */
  private readonly reserved = new Map<string, boolean>();
  private stopped = false;

  constructor(private readonly options: NodeComputationsOptions) {}

  get zombieIntervalMs(): number {
    return this.options.zombieIntervalMs;
  }

  get(computeId: string): KeptComputation | undefined {
    return this.kept.get(computeId);
  }

  /** A new entry for a computation being set up (not registered until `register`). */
  create(computeId: string): KeptComputation {
    const { destPathPrefix, logger } = this.options;
    return new KeptComputation({
      computeId,
      destPathPrefix,
      logger,
      onIdle: (kept) => {
        if (!kept.attached && this.kept.get(kept.id) === kept) this.options.release(kept.owner);
      },
      onActivity: () => this.options.activity?.(),
    });
  }

  /**
   * Resolves once no computation of this id is being closed: a new setup of the id waits for it,
   * or the old one's directory and saved replies would be removed under the new one.
   */
  async closed(computeId: string): Promise<void> {
    for (let closing = this.closing.get(computeId); closing; closing = this.closing.get(computeId)) await closing;
  }

  /**
   * A computation of this id is being closed elsewhere (by its session: Close, a failed or
   * abandoned setup, a connection's end): a setup of the id again waits for `work` (see `closed`).
   * Its errors are its caller's to report.
   */
  noteClosing(computeId: string, work: Promise<unknown>): void {
    this.trackClose(
      computeId,
      work.then(
        () => undefined,
        () => undefined,
      ),
    );
  }

  register(kept: KeptComputation): void {
    this.kept.set(kept.id, kept);
  }

  /** Forgets an entry (its computation and replies are its holder's to close). */
  remove(kept: KeptComputation): void {
    this.disarm(kept);
    if (this.kept.get(kept.id) === kept) this.kept.delete(kept.id);
  }

  /** Whether a computation held for `owner` still has jobs queued or running. */
  holdsJobs(owner: unknown): boolean {
    for (const kept of this.kept.values()) if (kept.owner === owner && kept.heldJobIds.length > 0) return true;
    return false;
  }

  /** A computation is admitted and being set up: it counts as running here (see `running`) until `unreserve`. */
  reserve(computeId: string, exclusive: boolean): void {
    this.reserved.set(computeId, exclusive);
  }

  /** Its setup has ended (set up: it counts as registered from now on; else not at all). */
  /** Whether a computation of this id is being set up (on any connection). */
  isReserved(computeId: string): boolean {
    return this.reserved.has(computeId);
  }

  unreserve(computeId: string): void {
    this.reserved.delete(computeId);
  }

  /**
   * The computations that run here, as admission counts them (by id: whether each is
   * exclusive): those being set up, those a client is attached to, and those whose client is
   * away while they still hold jobs. One left idle by a client that went away does not count.
   */
  running(): Map<string, boolean> {
    const running = new Map(this.reserved);
    for (const kept of this.kept.values()) {
      if (kept.computation && (kept.attached || kept.heldJobIds.length > 0)) running.set(kept.id, kept.exclusive);
    }
    return running;
  }

  /** Whether an idle computation left by a client that went away asked for the node alone. */
  get idleExclusive(): boolean {
    for (const kept of this.kept.values())
      if (kept.exclusive && kept.computation && !kept.attached && kept.heldJobIds.length === 0) return true;
    return false;
  }

  /** Computations with jobs queued or running here, whichever session holds them. */
  active(): KeptComputation[] {
    return [...this.kept.values()].filter((kept) => kept.computation && kept.heldJobIds.length > 0);
  }

  /** Every computation set up here: id, name, whether its client is attached, jobs held, whether exclusive. */
  describe(): { computeId: string; name: string; attached: boolean; jobs: number; exclusive: boolean }[] {
    return [...this.kept.values()]
      .filter((kept) => kept.computation)
      .map((kept) => ({
        computeId: kept.id,
        name: kept.name,
        attached: kept.attached,
        jobs: kept.heldJobIds.length,
        exclusive: kept.exclusive,
      }));
  }

  /** Jobs running now in computations no client is attached to. */
  detachedRunning(): number {
    let running = 0;
    for (const kept of this.kept.values()) if (!kept.attached) running += kept.computation?.runningJobs().length ?? 0;
    return running;
  }

  /** Another session now holds the node for what `from` held. */
  transferOwner(from: unknown, to: unknown): void {
    for (const kept of this.kept.values()) if (kept.owner === from) kept.owner = to;
  }

  /** The client's link is gone: its replies go to disk, and the computation expires a zombie interval after `lastHeard`. */
  detach(kept: KeptComputation, lastHeard: number): void {
    const expires = lastHeard + this.options.zombieIntervalMs;
    kept.detach(lastHeard, expires);
    this.arm(kept, expires);
  }

  /** A client attached again: the computation does not expire while it is. */
  attached(kept: KeptComputation): void {
    this.disarm(kept);
  }

  /**
   * A computation that wants the node alone is admitted: computations left by clients that went
   * away, with no job left, are closed (their workers stop); their saved replies stay on disk
   * until they expire.
   */
  closeIdleDetached(newOwner: unknown): void {
    for (const kept of this.kept.values()) {
      if (kept.owner !== newOwner) this.closeIfIdle(kept, 'for the new client');
    }
  }

  /**
   * A Setup of computation `computeId` came on a new connection: its client set it up before, but
   * the link was cut before the SetupReply reached it, so it has sent no job. The one left idle
   * here is closed first (`closed` waits for that); its saved replies stay until they expire.
   */
  closeIdleForSetup(computeId: string): void {
    const kept = this.kept.get(computeId);
    if (kept) this.closeIfIdle(kept, 'to set it up again for its client');
  }

  /** Closes a computation left by a lost client with no job left (its workers stop). */
  private closeIfIdle(kept: KeptComputation, why: string): void {
    if (kept.attached || !kept.computation || kept.heldJobIds.length > 0) return;
    this.options.logger.info(`closing computation ${kept.id}, left by a client that went away, ${why}`);
    this.trackClose(
      kept.id,
      kept.closeComputation({ dropReplies: true }).then(async () => {
        if (kept.hasReplies || this.kept.get(kept.id) !== kept || kept.attached) return;
        // Nothing left to give its client: nothing to keep.
        this.remove(kept);
        await kept.forget();
      }),
    );
  }

  /**
   * At start: finds the replies an earlier run of the node saved under the prefix. Those
   * expired, and folders that are not whole, are deleted; the others wait for their client.
   */
  async load(): Promise<void> {
    const { logger, destPathPrefix } = this.options;
    const now = Date.now();
    for (const { dir, meta } of await scanSavedReplies(destPathPrefix)) {
      if (!meta || meta.expires <= now || this.kept.has(meta.computeId)) {
        logger.info(meta ? `deleting the expired saved replies of computation ${meta.computeId}` : `deleting ${dir} (incomplete)`);
        await rm(dir, { recursive: true, force: true }).catch((error: Error) => logger.warn(`deleting ${dir}: ${error.message}`));
        continue;
      }
      const kept = this.create(meta.computeId);
      await kept.loadSaved();
      if (!kept.hasReplies) {
        await kept.forget();
        continue;
      }
      this.register(kept);
      this.arm(kept, meta.expires);
      logger.info(`computation ${meta.computeId}: saved replies found, kept until ${new Date(meta.expires).toISOString()}`);
    }
  }

  /**
   * The node stops: replies of jobs that end now are not kept (the jobs were cut short, not
   * done); every computation is closed; resolves once every reply being saved is on disk.
   */
  async close(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    const all = [...this.kept.values()];
    for (const kept of all) kept.dropLaterReplies();
    await Promise.all(all.map((kept) => kept.closeComputation({ dropReplies: true })));
    await Promise.all(all.map((kept) => kept.settled()));
  }

  private arm(kept: KeptComputation, expires: number): void {
    this.disarm(kept);
    if (this.stopped) return;
    const timer = setTimeout(
      () => {
        this.timers.delete(kept);
        if (Date.now() < expires) this.arm(kept, expires);
        else this.trackClose(kept.id, this.expire(kept));
      },
      Math.min(Math.max(0, expires - Date.now()), MAX_TIMER_MS),
    );
    timer.unref();
    this.timers.set(kept, timer);
  }

  private trackClose(computeId: string, work: Promise<void>): void {
    const done: Promise<void> = work
      .catch((error: Error) => this.options.logger.warn(`closing computation ${computeId}: ${error.message}`))
      .finally(() => {
        if (this.closing.get(computeId) === done) this.closing.delete(computeId);
      });
    this.closing.set(computeId, done);
  }

  private disarm(kept: KeptComputation): void {
    clearTimeout(this.timers.get(kept));
    this.timers.delete(kept);
  }

  private async expire(kept: KeptComputation): Promise<void> {
    if (this.kept.get(kept.id) !== kept || kept.attached) return;
    this.options.logger.warn(
      `computation ${kept.id}: its client was not back within the zombie interval; closing it and deleting its saved replies`,
    );
    this.kept.delete(kept.id);
    await kept.closeComputation({ dropReplies: true });
    await kept.forget();
    this.options.release(kept.owner);
  }
}
