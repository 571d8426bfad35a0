import { dispy, type FrameInit } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { Computation } from '../execution/computation.js';
import type { JobOutcome } from '../execution/worker-pool.js';
import type { ComputationEvents } from './computation-setup.js';
import { SavedReplies } from './saved-replies.js';

/** The connection a computation's replies go to while a client is attached to it. */
export interface ReplyLink {
  /** Sends a frame; false when the socket's buffer is full (see `drain`). */
  send(frame: FrameInit): boolean;
  drain(): Promise<void>;
  /** Streams a file a job sends back (`dispySendFile`) to the client. */
  sendFile(computation: Computation, jobId: number, file: string): Promise<void>;
  /** A job asked the node to shut down. */
  requestShutdown(): void;
}

export interface KeptComputationOptions {
  computeId: string;
  destPathPrefix: string;
  logger: Logger;
  /** The computation holds no queued or running job any more. */
  onIdle(kept: KeptComputation): void;
  /** The computation has jobs again (its first since it was idle), or has none left (after onIdle). */
  onActivity?(kept: KeptComputation): void;
}

/** The job's outcome as the JobReply that tells the client. */
export function toJobReply(computeId: string, outcome: JobOutcome): dispy.IJobReply {
  return {
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
}

/**
 * A computation as the node keeps it, whatever happens to the connection that set it up: the
 * computation itself (undefined once closed, when only its saved replies are left), the jobs it
 * holds (queued or running), and every JobReply not yet acknowledged. While a client is attached
 * (`link`), each reply is sent and kept in memory until its JobAck; while none is, each is saved
 * to disk (`SavedReplies`) and dropped from memory only once it is there for good.
 */
export class KeptComputation {
  readonly id: string;
  computation?: Computation;
  /** The session that holds the node for this computation (it stays after its link is lost, until the jobs end). */
  owner?: unknown;
  /** It asked for the node alone (Setup.exclusive). */
  exclusive = false;
  /** The computation's name (for the node's status). */
  name = '';
  /** The connection's computations that hold it now (none while detached). */
  holder?: { letGo(kept: KeptComputation): void };
  readonly saved: SavedReplies;
  private link?: ReplyLink;
  private readonly held = new Set<number>();
  /** Replies sent (or to save) and not acknowledged, in memory. */
  private readonly unacked = new Map<number, dispy.IJobReply>();
  /** Jobs whose replies are saved on disk and not acknowledged. */
  private readonly onDisk = new Set<number>();
  private readonly writes = new Set<Promise<void>>();
  /** Written once per detachment, before any reply (a restarted node finds replies by it). */
  private meta?: Promise<void>;
  /** Replies of jobs that end from now on are dropped (the node is stopping, or the computation expired). */
  private dropping = false;

  constructor(private readonly options: KeptComputationOptions) {
    this.id = options.computeId;
    this.saved = new SavedReplies(options.destPathPrefix, options.computeId);
  }

  /** What the computation's jobs report, wired to whichever client is attached now. */
  readonly events: ComputationEvents = {
    onDone: (outcome) => this.ended(toJobReply(this.id, outcome)),
    onProvisional: (jobId, result) => {
      // Provisional results are not kept: only a job's end must reach the client.
      this.link?.send({ jobReply: { computeId: this.id, jobId, status: dispy.JobStatus.PROVISIONAL, result } });
    },
    onSendFile: async (jobId, file) => {
      const { link, computation } = this;
      if (!link || !computation) throw new Error('the client is not connected');
      await link.sendFile(computation, jobId, file);
    },
    onShutdownRequest: () => this.link?.requestShutdown(),
  };

  get attached(): boolean {
    return this.link !== undefined;
  }

  /** Jobs queued or running here, whose replies will come when they end. */
  get heldJobIds(): number[] {
    return [...this.held];
  }

  /** A job was handed to the computation. */
  jobStarted(jobId: number): void {
    this.held.add(jobId);
    if (this.held.size === 1) this.options.onActivity?.(this);
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
   * A client takes the computation back (Reattach): its future replies go to `link`. Returns
   * the jobs it holds and how many replies are resent; `resend()` then sends them.
   */
  attach(link: ReplyLink): { heldJobIds: number[]; savedReplies: number; resend: () => Promise<void> } {
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
    return { heldJobIds: this.heldJobIds, savedReplies: known.length, resend };
  }

  private async readSaved(jobId: number): Promise<dispy.IJobReply | undefined> {
    if (!this.onDisk.has(jobId)) return undefined;
    return this.saved.read(jobId).catch((error: Error) => {
      this.options.logger.error(`reading the saved reply of job ${jobId} of computation ${this.id}: ${error.message}`);
      return undefined;
    });
  }

  /** Replies saved by an earlier run of the node (found at its start). */
  async loadSaved(): Promise<void> {
    for (const jobId of await this.saved.jobIds()) this.onDisk.add(jobId);
  }

  /**
   * Closes the computation, killing its jobs: their replies (Cancelled or Terminated) go to the
   * client attached, or are not kept with `dropReplies`. Replies kept so far stay.
   */
  async closeComputation({ dropReplies }: { dropReplies: boolean }): Promise<void> {
    const { computation } = this;
    if (!computation) return;
    this.computation = undefined;
    const dropping = this.dropping;
    if (dropReplies) this.dropping = true;
    await computation.close().catch((error: Error) => this.options.logger.warn(`closing computation ${this.id}: ${error.message}`));
    this.dropping = dropping;
    this.held.clear();
  }

  /** Stops keeping replies of jobs that end from now on (the node is stopping). */
  dropLaterReplies(): void {
    this.dropping = true;
  }

  /** The client is done with it, or it expired: every reply is forgotten, and the saved ones deleted. */
  async forget(): Promise<void> {
    this.dropping = true;
    this.link = undefined;
    this.unacked.clear();
    this.onDisk.clear();
    await this.settled();
    await this.saved
      .removeAll()
      .catch((error: Error) => this.options.logger.warn(`deleting saved replies of ${this.id}: ${error.message}`));
  }

  /** Resolves when every write to disk begun so far has ended. */
  async settled(): Promise<void> {
    while (this.writes.size > 0) await Promise.allSettled([...this.writes]);
  }

  /** Whether any reply is still kept (in memory or on disk). */
  get hasReplies(): boolean {
    return this.unacked.size > 0 || this.onDisk.size > 0;
  }

  private ended(reply: dispy.IJobReply): void {
    const jobId = Number(reply.jobId);
    const wasHeld = this.held.delete(jobId);
    if (!this.dropping) {
      this.unacked.set(jobId, reply);
      if (this.link) this.link.send({ jobReply: reply });
      else this.persist(jobId);
    }
    if (wasHeld && this.held.size === 0) {
      this.options.onIdle(this);
      this.options.onActivity?.(this);
    }
  }

  /** Saves a reply to disk, then drops it from memory (unless it was acknowledged meanwhile: then its file goes too). */
  private persist(jobId: number): void {
    const reply = this.unacked.get(jobId);
    if (!reply) return;
    const meta = this.meta ?? Promise.resolve();
    const write = meta
      .then(() => this.saved.save(reply))
      .then(async () => {
        if (this.unacked.get(jobId) !== reply) {
          await this.saved.remove(jobId);
          return;
        }
        this.unacked.delete(jobId);
        this.onDisk.add(jobId);
      });
    this.track(write, `saving the reply of job ${jobId} (kept in memory instead)`);
  }

  private track(work: Promise<void>, what: string): void {
    const tracked = work
      .catch((error: Error) => this.options.logger.error(`computation ${this.id}: ${what}: ${error.message}`))
      .finally(() => this.writes.delete(tracked));
    this.writes.add(tracked);
  }
}
