import type { FramedSocket, dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { Computation } from '../execution/computation.js';
import type { KeptComputation, ReplyLink } from './kept-computation.js';
import type { NodeComputations } from './node-computations.js';

export interface SessionComputationsOptions {
  channel: FramedSocket;
  logger: Logger;
  /** The node's registry, where computations outlive this connection. */
  registry: NodeComputations;
  /** Where the replies of this connection's computations go. */
  link: ReplyLink;
  /** The session, as the node knows its owner. */
  owner: unknown;
  /** CPUs the node offers now. */
  readonly nodeCpus: () => number;
  /**
   * Makes this session the node's client, taking over from `from` (the session that set the
   * computation up); false when another client holds the node.
   */
  claimFrom(from: unknown): boolean;
  /** The client may have no computation here any more: the node may be free for others. */
  release(): void;
}

/**
 * The computations this connection's client has on this node: those it set up or took back
 * (Reattach), kept in the node's registry so that they outlive the connection, and those whose
 * setup still waits for files; and the client's requests about them: SetCpus, Close, Reattach
 * and JobAck, answered under the request's id.
 */
export class SessionComputations {
  /** Computations of this connection, live or known only from their saved replies. */
  private readonly kept = new Map<string, KeptComputation>();
  private readonly preparing = new Map<string, Computation>();

  constructor(private readonly options: SessionComputationsOptions) {}

  /** A computation set up and running jobs. */
  get(computeId: string): Computation | undefined {
    return this.kept.get(computeId)?.computation;
  }

  /** The entry of a computation of this connection. */
  entry(computeId: string): KeptComputation | undefined {
    return this.kept.get(computeId);
  }

  /** A computation set up or still being set up (files go to either). */
  find(computeId: string): Computation | undefined {
    return this.get(computeId) ?? this.preparing.get(computeId);
  }

  has(computeId: string): boolean {
    return this.get(computeId) !== undefined || this.preparing.has(computeId);
  }

  /** Computations of this connection (set up, being set up, or known only from saved replies). */
  get size(): number {
    return this.kept.size + this.preparing.size;
  }

  /** Computations set up or being set up (those that hold the node). */
  get liveCount(): number {
    return this.readyCount + this.preparing.size;
  }

  /** Computations set up and running jobs. */
  get readyCount(): number {
    let ready = 0;
    for (const kept of this.kept.values()) if (kept.computation) ready++;
    return ready;
  }

  /**
   * The entry a new setup of `computeId` uses: a fresh one, or that of a computation known only
   * from its saved replies (they stay its). Undefined when the computation is set up already.
   */
  entryForSetup(computeId: string): KeptComputation | undefined {
    if (this.has(computeId)) return undefined;
    const known = this.options.registry.get(computeId);
    if (known?.computation) return undefined;
    return known ?? this.options.registry.create(computeId);
  }

  /**
   * Resolves once no computation of this id, left idle by a lost client, is open or being closed:
   * a setup of it again (its SetupReply was lost with the link) replaces it.
   */
  closedBefore(computeId: string): Promise<void> {
    if (!this.has(computeId)) this.options.registry.closeIdleForSetup(computeId);
    return this.options.registry.closed(computeId);
  }

  /** A setup began: its computation receives files but runs no job yet. */
  preparingStarted(computation: Computation): void {
    this.preparing.set(computation.id, computation);
  }

  /**
   * A setup ended (`kept`: its computation now runs jobs, and outlives this connection).
   * Returns false when the computation was closed meanwhile.
   */
  preparingEnded(computation: Computation, kept?: KeptComputation): boolean {
    if (this.preparing.get(computation.id) !== computation) return false;
    this.preparing.delete(computation.id);
    if (!kept) return true;
    const { registry, link, owner } = this.options;
    kept.computation = computation;
    kept.owner = owner;
    registry.register(kept);
    registry.attached(kept);
    // Replies saved before (a computation set up again after its node restarted) stay on disk
    // until acknowledged or closed; they are resent on Reattach only.
    if (kept.holder !== this || !kept.attached) {
      kept.holder?.letGo(kept);
      kept.attach(link);
    }
    kept.holder = this;
    this.kept.set(kept.id, kept);
    return true;
  }

  /** Jobs running now, over every computation. */
  runningJobs(): number {
    let running = 0;
    for (const kept of this.kept.values()) running += kept.computation?.runningJobs().length ?? 0;
    return running;
  }

  /** The node's CPUs changed: each computation uses at most that many (and at least one). */
  nodeCpusChanged(cpus: number): void {
    for (const { computation } of this.kept.values()) {
      computation?.resize(Math.max(1, Math.min(cpus, computation.requestedCpus))).catch((error: Error) => {
        this.options.logger.warn(`computation ${computation.id} could not use ${cpus} CPUs: ${error.message}`);
      });
    }
  }

  /** SetCpus: another number of CPUs for a computation (at most what the node offers). */
  async setCpus(request: dispy.SetCpus, requestId: number): Promise<void> {
    const { channel, nodeCpus, logger } = this.options;
    const { computeId } = request;
    const computation = this.get(computeId);
    if (!computation) {
      channel.send({ requestId, setCpusReply: { computeId, cpus: 0, error: `no computation ${computeId} here` } });
      return;
    }
    const cpus = Math.min(request.cpus, nodeCpus());
    try {
      await computation.resize(Math.max(cpus, 1));
    } catch (error) {
      logger.warn(`computation ${computeId} could not use ${cpus} CPUs: ${(error as Error).message}`);
      channel.send({ requestId, setCpusReply: { computeId, cpus: computation.cpus, error: (error as Error).message } });
      return;
    }
    channel.send({ requestId, setCpusReply: { computeId, cpus } });
  }

  /**
   * Close: the client is done with a computation. A running job is killed and its reply
   * (Cancelled) sent before CloseReply; then every reply kept for it is forgotten, the saved
   * ones deleted. One still being set up is abandoned.
   */
  async close(request: dispy.Close, requestId: number): Promise<void> {
    const { computeId } = request;
    const kept = this.kept.get(computeId);
    const preparing = this.preparing.get(computeId);
    this.kept.delete(computeId);
    this.preparing.delete(computeId);
    const warn = (error: Error) => this.options.logger.warn(`closing computation ${computeId}: ${error.message}`);
    const closing = (async () => {
      await preparing?.close().catch(warn);
      if (kept) {
        await kept.closeComputation({ dropReplies: false });
        this.options.registry.remove(kept);
        await kept.forget();
      }
    })();
    this.options.registry.noteClosing(computeId, closing);
    await closing;
    this.options.channel.send({ requestId, closeReply: { computeId } });
    this.options.release();
  }

  /**
   * Reattach: takes back a computation set up on an earlier connection (or known only from its
   * saved replies). Answers ReattachReply, then resends every reply not yet acknowledged.
   */
  reattach(request: dispy.Reattach, requestId: number): void {
    const { channel, registry, link, owner, logger } = this.options;
    const { computeId } = request;
    const kept = registry.get(computeId);
    if (!kept) {
      const error = `no computation ${computeId} on this node: never set up here, closed, or its saved replies expired`;
      channel.send({ requestId, reattachReply: { computeId, ok: false, error } });
      return;
    }
    if (this.preparing.has(computeId)) {
      channel.send({ requestId, reattachReply: { computeId, ok: false, error: `computation ${computeId} is being set up` } });
      return;
    }
    // A connection the node still thinks alive (its client saw the link die first) lets go of it.
    if (kept.holder !== this) kept.holder?.letGo(kept);
    if (kept.computation && kept.owner !== owner) {
      if (this.options.claimFrom(kept.owner)) {
        registry.transferOwner(kept.owner, owner);
      } else {
        // Cannot happen while its jobs run (the node stays its client's); an idle one left for another client is closed.
        logger.info(`computation ${computeId}: the node serves another client now; its saved replies only are resent`);
        void kept.closeComputation({ dropReplies: true });
      }
    }
    registry.attached(kept);
    kept.holder = this;
    this.kept.set(computeId, kept);
    const { heldJobIds, savedReplies, resend } = kept.attach(link);
    const live = kept.computation !== undefined;
    channel.send({ requestId, reattachReply: { computeId, ok: true, live, heldJobIds, savedReplies } });
    logger.info(
      `computation ${computeId} reattached (${live ? 'live' : 'saved replies only'}): ${heldJobIds.length} jobs held, ${savedReplies} replies resent`,
    );
    void resend().catch((error: Error) => logger.error(`resending replies of ${computeId}: ${error.message}`));
  }

  /** JobAck: the client has these replies (of one computation, or of every computation of this connection). */
  acknowledged(ack: dispy.JobAck): void {
    const jobIds = ack.jobIds.map(Number);
    if (ack.computeId) {
      this.kept.get(ack.computeId)?.acknowledged(jobIds);
      return;
    }
    for (const kept of this.kept.values()) kept.acknowledged(jobIds);
  }

  /** Another connection took `kept` back (Reattach): it is not this one's any more. */
  letGo(kept: KeptComputation): void {
    if (this.kept.get(kept.id) === kept) this.kept.delete(kept.id);
  }

  /**
   * The link is lost: computations being set up are closed; the others are detached (their jobs
   * go on, their replies are saved) for the client to take back. `lastHeard`: when it was last heard.
   */
  async detachAll(lastHeard: number): Promise<void> {
    const { registry } = this.options;
    for (const kept of this.kept.values()) {
      kept.holder = undefined;
      registry.detach(kept, lastHeard);
    }
    this.kept.clear();
    await this.closePreparing();
  }

  /** The session ends for good (service hours ended): closes every computation, killing its jobs, and forgets its replies. */
  async closeAll(): Promise<void> {
    const all = [...this.kept.values()];
    this.kept.clear();
    const closing = all.map(async (kept) => {
      await kept.closeComputation({ dropReplies: true });
      this.options.registry.remove(kept);
      await kept.forget();
    });
    all.forEach((kept, index) => this.options.registry.noteClosing(kept.id, closing[index]!));
    await Promise.all([...closing, this.closePreparing()]);
  }

  private async closePreparing(): Promise<void> {
    // Tracked by id: the client may set the computation up again at once on a new connection,
    // and its directory must not be removed under the new one.
    const closing = [...this.preparing.values()].map((computation) => {
      const work = computation.close();
      this.options.registry.noteClosing(computation.id, work);
      return work;
    });
    this.preparing.clear();
    for (const result of await Promise.allSettled(closing)) {
      if (result.status === 'rejected') this.options.logger.warn(`closing a computation: ${(result.reason as Error).message}`);
    }
  }
}
