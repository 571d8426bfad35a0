import type { dispy } from '../schema/schema.js';
import type { Logger } from './logger.js';
import { SavedReplies } from './saved-replies.js';

/** Where kept replies go while a client is attached. */
export interface ReplySink {
  /** Sends a frame; false when the socket's buffer is full (see `drain`). */
  send(frame: dispy.IFrame): boolean;
  drain(): Promise<void>;
}

/**
 * The final JobReplies of one computation not yet acknowledged by its client, whatever happens
 * to the client's connection: a node keeps them for its clients (`KeptComputation`), and
 * dispyscheduler for its SharedJobClusters. While a client is attached (`attach`), each reply is
 * sent and kept in memory until its JobAck; while none is (`detach`), each is saved to disk
 * (`SavedReplies`, atomically) and dropped from memory only once it is there for good. A client
 * that attaches again gets them all resent, in job order, from memory or disk alike.
 */
export class KeptReplies {
  readonly saved: SavedReplies;
  private link?: ReplySink;
  /** Replies sent (or to save) and not acknowledged, in memory. */
  private readonly unacked = new Map<number, dispy.IJobReply>();
  /** Jobs whose replies are saved on disk and not acknowledged. */
  private readonly onDisk = new Set<number>();
  private readonly writes = new Set<Promise<void>>();
  /** Written once per detachment, before any reply (a restarted process finds replies by it). */
  private meta?: Promise<void>;
  /** Replies of jobs that end from now on are dropped (the process is stopping, or the computation expired). */
  dropping = false;

  constructor(
    prefix: string,
    readonly computeId: string,
    private readonly logger: Logger,
  ) {
    this.saved = new SavedReplies(prefix, computeId);
  }

  /** Whether a client is attached (replies go to it). */
  get attached(): boolean {
    return this.link !== undefined;
  }

  /** A job's final reply: sent to the client attached (kept until acknowledged), or saved to disk. */
  ended(reply: dispy.IJobReply): void {
    if (this.dropping) return;
    const jobId = Number(reply.jobId);
    this.unacked.set(jobId, reply);
    if (this.link) this.link.send({ jobReply: reply });
    else this.persist(jobId);
  }

  /** The client has the replies of these jobs: they are forgotten, in memory and on disk. */
  acknowledged(jobIds: readonly number[]): void {
    for (const jobId of jobIds) {
      this.unacked.delete(jobId);
      if (this.onDisk.delete(jobId)) this.track(this.saved.remove(jobId), `removing the saved reply of job ${jobId}`);
    }
  }

  /**
   * The link is lost: from now on replies are saved to disk, starting with those not yet
   * acknowledged. `lastHeard` and `expires` go to the folder's metadata first.
   */
  detach(lastHeard: number, expires: number): void {
    this.link = undefined;
    this.meta = this.saved.writeMeta({ lastHeard, expires });
    this.track(this.meta, 'recording the saved replies');
    for (const jobId of this.unacked.keys()) this.persist(jobId);
  }

  /**
   * A client takes the replies back: future replies go to `link`. Returns how many replies are
   * resent; `resend()` then sends them (after the caller's answer).
   */
  attach(link: ReplySink): { savedReplies: number; resend: () => Promise<void> } {
    this.link = link;
    this.meta = undefined;
    // Resent in job order, whether a reply is still in memory or already on disk.
    const known = [...new Set([...this.unacked.keys(), ...this.onDisk])].sort((a, b) => a - b);
    const resend = async (): Promise<void> => {
      for (const jobId of known) {
        if (this.link !== link) return;
        const reply = this.unacked.get(jobId) ?? (await this.readSaved(jobId));
        // Acknowledged meanwhile (a copy went from memory), or lost: nothing to send.
        if (!reply || this.link !== link || !(this.unacked.has(jobId) || this.onDisk.has(jobId))) continue;
        if (!link.send({ jobReply: reply })) await link.drain();
      }
    };
    return { savedReplies: known.length, resend };
  }

  /** Replies saved by an earlier run (found at start). */
  async loadSaved(): Promise<void> {
    for (const jobId of await this.saved.jobIds()) this.onDisk.add(jobId);
  }

  /** The client is done with them, or they expired: every reply is forgotten, and the saved ones deleted. */
  async forget(): Promise<void> {
    this.dropping = true;
    this.link = undefined;
    this.unacked.clear();
    this.onDisk.clear();
    await this.settled();
    await this.saved.removeAll().catch((error: Error) => this.logger.warn(`deleting saved replies of ${this.computeId}: ${error.message}`));
  }

  /** Resolves when every write to disk begun so far has ended. */
  async settled(): Promise<void> {
    while (this.writes.size > 0) await Promise.allSettled([...this.writes]);
  }

  /** Whether any reply is still kept (in memory or on disk). */
  get hasReplies(): boolean {
    return this.unacked.size > 0 || this.onDisk.size > 0;
  }

  private async readSaved(jobId: number): Promise<dispy.IJobReply | undefined> {
    if (!this.onDisk.has(jobId)) return undefined;
    return this.saved.read(jobId).catch((error: Error) => {
      this.logger.error(`reading the saved reply of job ${jobId} of computation ${this.computeId}: ${error.message}`);
      return undefined;
    });
  }

  /**
   * Saves a reply to disk, then drops it from memory (unless it was acknowledged meanwhile: then
   * its file goes too). A client that comes and goes again quickly can start a second save of the
   * same reply before the first has ended: whichever ends last finds it on disk already, and
   * leaves the file alone.
   */
  private persist(jobId: number): void {
    const reply = this.unacked.get(jobId);
    if (!reply) return;
    const meta = this.meta ?? Promise.resolve();
    const write = meta
      .then(() => this.saved.save(reply))
      .then(async () => {
        if (this.unacked.get(jobId) === reply) {
          this.unacked.delete(jobId);
          this.onDisk.add(jobId);
        } else if (!this.onDisk.has(jobId)) {
          // Acknowledged meanwhile (neither in memory nor on disk any more): the file goes too.
          await this.saved.remove(jobId);
        }
      });
    this.track(write, `saving the reply of job ${jobId} (kept in memory instead)`);
  }

  private track(work: Promise<void>, what: string): void {
    const tracked = work
      .catch((error: Error) => this.logger.error(`computation ${this.computeId}: ${what}: ${error.message}`))
      .finally(() => this.writes.delete(tracked));
    this.writes.add(tracked);
  }
}
