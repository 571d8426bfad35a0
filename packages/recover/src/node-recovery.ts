import type net from 'node:net';
import { MAX_REPEATED_ENTRIES, dispy, type ClientTls, type Frame } from '@dispy/protocol';
import { NodeConnection } from '@dispy/scheduler';

/** How one job came out of recovery on its node. */
export type NodeJobOutcome =
  /** Its final reply (from the node's memory or disk, or as it ended). */
  | { kind: 'replied'; reply: dispy.JobReply }
  /** Still on the node when recovery stopped waiting (`timeout` without `terminatePending`). */
  | { kind: 'running' }
  /** The node has no record of it: it never arrived there, or its reply was acknowledged. */
  | { kind: 'lost'; why: string }
  /** The node could not be asked, or went away: it may still hold the job. */
  | { kind: 'unreachable'; why: string }
  /** Terminated by recovery (`terminatePending`) without a reply of its own. */
  | { kind: 'terminated'; why: string };

export interface NodeRecoveryOptions {
  host: string;
  port: number;
  name: string;
  computeId: string;
  secret: string;
  tls?: ClientTls;
  clientName: string;
  /** Jobs the recover file says were on this node, their outcome pending. */
  pending: readonly number[];
  /** Whether the file says a job ended (the program had its outcome): a reply resent for it is acknowledged and dropped. */
  ended: (job: number) => boolean;
  /** Epoch ms after which jobs still running are terminated or left running; undefined: wait for them all. */
  deadline?: number;
  terminatePending: boolean;
  /** Makes the socket (tests); default `net.connect`. */
  connect?: () => net.Socket;
}

export interface NodeRecoveryResult {
  /** Every job of `pending`, and any other job of the computation the node held or had replies for. */
  outcomes: Map<number, NodeJobOutcome>;
  /** The computation was closed on the node (it forgot it and its saved replies). */
  released: boolean;
}

// NodeConnection matches answers to its own requests by id (1, 2, …); Reattach goes out with an
// id of ours far from those, so its answer reaches onFrame. (A `reattach()` of NodeConnection can
// replace this when the connection has one.)
const REATTACH_REQUEST_ID = 0xffff_fff0;
/** How long a node has to answer Reattach and to send its saved replies. */
const ANSWER_TIMEOUT_MS = 60_000;
/** Pulses to the node while waiting, so it never presumes this link dead (its heartbeat is at least this). */
const PULSE_MS = 1_000;
/** How long the node has to hang up in turn when recovery ends the connection. */
const HANG_UP_MS = 2_000;

/**
 * Recovers a computation's jobs from one node: connects and authenticates, sends Reattach, takes
 * the replies the node saved and those of the jobs it holds as they end (until `deadline`), then
 * terminates what still runs (`terminatePending`), acknowledges every reply, and closes the
 * computation there when nothing of it is left running. Never throws: a node that cannot be
 * reached gives its jobs the outcome `unreachable`, naming it.
 */
export async function recoverFromNode(options: NodeRecoveryOptions): Promise<NodeRecoveryResult> {
  return new NodeRecovery(options).run();
}

class NodeRecovery {
  private readonly label: string;
  private readonly connection: NodeConnection;
  private readonly replies = new Map<number, dispy.JobReply>();
  /** Replies resent for jobs the file says ended: acknowledged, not returned. */
  private readonly stale = new Set<number>();
  private held = new Set<number>();
  private reattached?: dispy.ReattachReply;
  private savedSeen = 0;
  private gone?: Error;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly options: NodeRecoveryOptions) {
    this.label = `node ${options.name} (${options.host}:${options.port})`;
    this.connection = new NodeConnection({
      host: options.host,
      port: options.port,
      secret: options.secret,
      tls: options.tls,
      clientName: options.clientName,
      onFrame: (frame) => this.onFrame(frame),
      onClose: (error) => {
        this.gone = error ?? new Error('the connection closed');
        this.wake();
      },
      connect: options.connect,
    });
  }

  async run(): Promise<NodeRecoveryResult> {
    const { computeId, pending } = this.options;
    try {
      await this.connection.open();
    } catch (error) {
      return this.allOf(pending, { kind: 'unreachable', why: `${this.label} could not be reached: ${(error as Error).message}` });
    }
    this.connection.socket?.setKeepAlive(true, 10_000);
    const pulses = setInterval(() => this.connection.send({ pulse: {} }), PULSE_MS);
    pulses.unref();
    try {
      this.connection.send({ reattach: { computeId }, requestId: REATTACH_REQUEST_ID });
      const answerBy = Date.now() + ANSWER_TIMEOUT_MS;
      await this.until(() => this.reattached !== undefined, answerBy);
      const answer = this.reattached;
      if (!answer) {
        const why = this.gone ? `went away before answering Reattach (${this.gone.message})` : 'did not answer Reattach in 60 s';
        return this.allOf(pending, { kind: 'unreachable', why: `${this.label} ${why}` });
      }
      if (!answer.ok) {
        const why = `${this.label} has no computation ${computeId} (${answer.error || 'unknown there'}): its jobs' replies are gone`;
        return this.allOf(pending, { kind: 'lost', why });
      }
      this.held = new Set(answer.heldJobIds.map(Number));
      // The saved replies come at once; then what is held, as it ends.
      await this.until(() => this.savedSeen >= answer.savedReplies, Math.min(answerBy, this.options.deadline ?? Infinity));
      await this.until(() => [...this.held].every((job) => this.replies.has(job)), this.options.deadline);
      return await this.finish();
    } finally {
      clearInterval(pulses);
      await this.hangUp();
    }
  }

  /**
   * Ends the connection gracefully, so the acknowledgements just sent are read before the node
   * sees it go (a reset could discard them unread); cut off after HANG_UP_MS.
   */
  private async hangUp(): Promise<void> {
    const socket = this.connection.socket;
    if (socket && !this.gone) {
      // The frames of this tick leave when the tick ends (FramedSocket corks and seals them then).
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(done, HANG_UP_MS);
        socket.once('close', done);
        socket.end();
      });
    }
    this.connection.destroy();
  }

  /** After waiting: terminate or leave what still runs, acknowledge, release the computation. */
  private async finish(): Promise<NodeRecoveryResult> {
    const { computeId, terminatePending } = this.options;
    const stillHeld = () => [...this.held].filter((job) => !this.replies.has(job));
    let released = false;
    let terminated = false;
    let stillBefore = new Set<number>();
    if (!this.gone) this.acknowledge();
    if (!this.gone && (stillHeld().length === 0 || terminatePending)) {
      terminated = stillHeld().length > 0;
      stillBefore = new Set(stillHeld());
      // Replies that come before the node's CloseReply (Terminated ones among them) are taken;
      // closing forgets them on the node, so they need no acknowledgement.
      released = await this.connection.closeComputation(computeId, terminatePending).then(
        () => true,
        () => false,
      );
    }
    const outcomes = new Map<number, NodeJobOutcome>();
    const terminatedWhy = `terminated on ${this.label} by recoverJobs (terminatePending)`;
    for (const [job, reply] of this.replies) {
      // The node reports a job that closing killed as Cancelled; here the program asked for it to be terminated.
      const killedByUs = terminated && stillBefore.has(job) && reply.status === dispy.JobStatus.CANCELLED;
      outcomes.set(job, killedByUs ? { kind: 'terminated', why: terminatedWhy } : { kind: 'replied', reply });
    }
    for (const job of new Set([...this.options.pending, ...this.held])) {
      if (outcomes.has(job)) continue;
      if (this.gone && !released) {
        outcomes.set(job, {
          kind: 'unreachable',
          why: `${this.label} went away during recovery (${this.gone.message}); it may still hold the job: recover again later`,
        });
      } else if (!this.held.has(job)) {
        outcomes.set(job, {
          kind: 'lost',
          why: `${this.label} has no record of the job: it never arrived there, or its reply had reached the client`,
        });
      } else if (terminated && released) {
        outcomes.set(job, { kind: 'terminated', why: terminatedWhy });
      } else {
        outcomes.set(job, { kind: 'running' });
      }
    }
    return { outcomes, released };
  }

  private onFrame(frame: Frame): void {
    if (frame.kind === 'reattachReply' && frame.requestId === REATTACH_REQUEST_ID) {
      this.reattached ??= frame.reattachReply as dispy.ReattachReply;
    } else if (frame.kind === 'error' && frame.requestId === REATTACH_REQUEST_ID) {
      this.reattached ??= dispy.ReattachReply.create({ ok: false, error: frame.error!.message });
    } else if (frame.kind === 'jobReply') {
      const reply = frame.jobReply as dispy.JobReply;
      if (reply.computeId !== this.options.computeId || reply.status === dispy.JobStatus.PROVISIONAL) return;
      const job = Number(reply.jobId);
      if (!this.held.has(job)) this.savedSeen++;
      if (this.options.ended(job)) this.stale.add(job);
      else this.replies.set(job, reply);
    }
    this.wake();
  }

  /** Tells the node which replies arrived (it forgets them, and their files). */
  private acknowledge(): void {
    const jobIds = [...this.replies.keys(), ...this.stale];
    for (let from = 0; from < jobIds.length; from += MAX_REPEATED_ENTRIES) {
      this.connection.send({ jobAck: { jobIds: jobIds.slice(from, from + MAX_REPEATED_ENTRIES), computeId: this.options.computeId } });
    }
  }

  private allOf(jobs: readonly number[], outcome: NodeJobOutcome): NodeRecoveryResult {
    return { outcomes: new Map(jobs.map((job) => [job, outcome])), released: false };
  }

  /** Resolves once `done()` holds, the connection is gone, or `deadline` (epoch ms) passes. */
  private until(done: () => boolean, deadline?: number): Promise<void> {
    if (done() || this.gone) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const check = () => {
        if (done() || this.gone) finish();
      };
      const timer = deadline === undefined || deadline === Infinity ? undefined : setTimeout(finish, Math.max(0, deadline - Date.now()));
      this.waiters.add(check);
    });
  }

  private wake(): void {
    for (const check of [...this.waiters]) check();
  }
}
