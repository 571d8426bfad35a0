import { dispy, type FrameInit } from '@dispy/protocol';
import { KeptReplies, type Logger, type SavedReplies } from '@dispy/protocol/internal';
import type { Computation } from '../execution/computation.js';
import type { JobOutcome } from '../execution/worker-pool.js';
import type { ComputationEvents } from './computation-setup.js';

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

/**
 * How long the starts of jobs wait to go out together (ms): one JobEvent (RUNNING) per
 * computation in that time at most, whatever the number of jobs, and a job that ends meanwhile
 * is left out (its JobReply carries its start time).
 */
export const START_BATCH_MS = 5;

/** Most jobs in one JobEvent (a batch larger goes in several). */
const MAX_STARTS_PER_FRAME = 4096;

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
 * holds (queued or running), and every JobReply not yet acknowledged (`KeptReplies`, shared with
 * dispyscheduler): while a client is attached (`link`), each reply is sent and kept in memory
 * until its JobAck; while none is, each is saved to disk and dropped from memory only once it is
 * there for good.
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
  private readonly replies: KeptReplies;
  private link?: ReplyLink;
  private readonly held = new Set<number>();
  /** Jobs started and not yet reported to the client: job id -> start time (epoch ms; 0: unknown). */
  private readonly starts = new Map<number, number>();
  private startTimer?: NodeJS.Timeout;

  constructor(private readonly options: KeptComputationOptions) {
    this.id = options.computeId;
    this.replies = new KeptReplies(options.destPathPrefix, options.computeId, options.logger);
  }

  /** Its replies saved on disk. */
  get saved(): SavedReplies {
    return this.replies.saved;
  }

  /** What the computation's jobs report, wired to whichever client is attached now. */
  readonly events: ComputationEvents = {
    onDone: (outcome) => this.ended(toJobReply(this.id, outcome)),
    onStarted: (jobId, startTime) => this.started(jobId, startTime),
    onProvisional: (jobId, result) => {
      // Its start goes first: the client sees it Running before its intermediate result.
      if (this.starts.has(jobId)) this.flushStarts();
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

  /** The node gave these jobs back to the client (Reclaim): no reply will come for them. */
  reclaimed(jobIds: readonly number[]): void {
    let dropped = false;
    for (const jobId of jobIds) {
      this.starts.delete(jobId);
      if (this.held.delete(jobId)) dropped = true;
    }
    if (dropped && this.held.size === 0) {
      this.options.onIdle(this);
      this.options.onActivity?.(this);
    }
  }

  /**
   * Sends the starts not yet reported (JobEvent RUNNING, in as few frames as it takes). Called
   * START_BATCH_MS after the first of a batch, and before an answer that must follow them.
   */
  flushStarts(): void {
    clearTimeout(this.startTimer);
    this.startTimer = undefined;
    const { link } = this;
    if (!link || this.starts.size === 0) {
      this.starts.clear();
      return;
    }
    const entries = [...this.starts];
    this.starts.clear();
    for (let at = 0; at < entries.length; at += MAX_STARTS_PER_FRAME) {
      const batch = entries.slice(at, at + MAX_STARTS_PER_FRAME);
      link.send({
        jobEvent: {
          computeId: this.id,
          event: dispy.JobEvent.Event.RUNNING,
          jobIds: batch.map(([jobId]) => jobId),
          startTimes: batch.map(([, startTime]) => startTime),
        },
      });
    }
  }

  /** A worker started a job: reported in the next batch, while a client is attached. */
  private started(jobId: number, startTime: number): void {
    if (!this.link || !this.held.has(jobId)) return;
    this.starts.set(jobId, startTime);
    if (this.startTimer) return;
    this.startTimer = setTimeout(() => this.flushStarts(), START_BATCH_MS);
    this.startTimer.unref();
  }

  /** The client has the replies of these jobs: they are forgotten, in memory and on disk. */
  acknowledged(jobIds: readonly number[]): void {
    this.replies.acknowledged(jobIds);
  }

  /**
   * The link is lost: from now on replies are saved to disk, starting with those not yet
   * acknowledged. `lastHeard` and `expires` go to the folder's metadata first.
   */
  detach(lastHeard: number, expires: number): void {
    this.link = undefined;
    this.flushStarts();
    this.replies.detach(lastHeard, expires);
  }

  /**
   * A client takes the computation back (Reattach): its future replies go to `link`. Returns
   * the jobs it holds and how many replies are resent; `resend()` then sends them.
   */
  attach(link: ReplyLink): { heldJobIds: number[]; savedReplies: number; resend: () => Promise<void> } {
    this.link = link;
    // The jobs running now are reported again: the client knows which of those it holds have started.
    for (const jobId of this.computation?.runningJobs() ?? []) this.started(jobId, 0);
    return { heldJobIds: this.heldJobIds, ...this.replies.attach(link) };
  }

  /** Replies saved by an earlier run of the node (found at its start). */
  async loadSaved(): Promise<void> {
    await this.replies.loadSaved();
  }

  /**
   * Closes the computation, killing its jobs: their replies (Cancelled or Terminated) go to the
   * client attached, or are not kept with `dropReplies`. Replies kept so far stay.
   */
  async closeComputation({ dropReplies }: { dropReplies: boolean }): Promise<void> {
    const { computation } = this;
    if (!computation) return;
    this.computation = undefined;
    this.flushStarts();
    const dropping = this.replies.dropping;
    if (dropReplies) this.replies.dropping = true;
    await computation.close().catch((error: Error) => this.options.logger.warn(`closing computation ${this.id}: ${error.message}`));
    this.replies.dropping = dropping;
    this.held.clear();
  }

  /** Stops keeping replies of jobs that end from now on (the node is stopping). */
  dropLaterReplies(): void {
    this.replies.dropping = true;
  }

  /** The client is done with it, or it expired: every reply is forgotten, and the saved ones deleted. */
  async forget(): Promise<void> {
    this.link = undefined;
    this.flushStarts();
    await this.replies.forget();
  }

  /** Resolves when every write to disk begun so far has ended. */
  settled(): Promise<void> {
    return this.replies.settled();
  }

  /** Whether any reply is still kept (in memory or on disk). */
  get hasReplies(): boolean {
    return this.replies.hasReplies;
  }

  private ended(reply: dispy.IJobReply): void {
    const wasHeld = this.held.delete(Number(reply.jobId));
    this.starts.delete(Number(reply.jobId));
    this.replies.ended(reply);
    if (wasHeld && this.held.size === 0) {
      this.options.onIdle(this);
      this.options.onActivity?.(this);
    }
  }
}
