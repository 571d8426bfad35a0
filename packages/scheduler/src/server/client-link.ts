import { mkdir, rm } from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import {
  ErrorCode,
  FramedSocket,
  HANDSHAKE_LIMITS,
  SESSION_LIMITS,
  ServerHandshake,
  UNEXPECTED,
  dispatchFrame,
  dispy,
  type Frame,
  type FrameInit,
  type FrameTable,
  type Attachment,
  type FileReceiver,
} from '@dispy/protocol';
import { KeptReplies } from '@dispy/protocol/internal';
import { LinkLiveness } from '../session/link-liveness.js';
import type { LocalFile } from '../cluster/types.js';
import type { ClientComputation } from './kept-client-computations.js';
import { ClientAllocations } from './client-allocations.js';
import type { ClientLinkContext } from './client-link-context.js';
import { computationEvents } from './client-events.js';
import { ClientNodeRequests } from './client-node-requests.js';
import { ClientJobs } from './client-jobs.js';
import { clientFileReceiver } from './client-file-receiver.js';
import { resolveNodePatterns } from './node-patterns.js';
import { NOT_ON_SHARED_LINK } from './shared-link-frames.js';

export type { ClientJobRef } from './kept-client-computations.js';
export type { ClientLinkContext, ClientNodeOps } from './client-link-context.js';

/** Resent replies wait for the socket to drain above this many bytes buffered. */
const DRAIN_ABOVE_BYTES = 4 * 1024 * 1024;

/** A compute id names a directory: letters, digits, `-` and `_` only. */
const COMPUTE_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Names the scheduler's own folders take in its directory (a computation's directory is beside them). */
const RESERVED_IDS = new Set(['saved-replies', 'job-files']);

/**
 * One SharedJobCluster's connection to dispyscheduler. The scheduler answers it as a node does
 * (inside TLS with the cluster secret or certificates, the handshake with the cluster secret): Setup (with FileWant and the
 * files), Job, Cancel, Close and JobAck come in; SetupReply, NodeStatus, JobEvent, JobReply
 * (with the node that ran the job), CloseReply and heartbeats go out. When the connection ends (or
 * the client is silent for four heartbeats), the client's computations are closed and their
 * running jobs terminated.
 */
export class ClientLink {
  readonly peer: string;
  private readonly channel: FramedSocket;
  private readonly handshake: ServerHandshake;
  private readonly computations = new Map<string, ClientComputation>();
  private readonly handlers: FrameTable;
  private liveness?: LinkLiveness;
  private receiver?: FileReceiver;
  private authenticated = false;
  private closed = false;
  /** Allocate requests (per-node depends, setup arguments, CPUs; allocateNode). */
  private readonly allocations: ClientAllocations;
  /** sendFile, closeNode, deallocateNode and setNodeCpus of the client's computations. */
  private readonly nodeRequests: ClientNodeRequests;
  /** Its Job and Cancel frames. */
  private readonly jobs: ClientJobs;
  /** The client's name, as its Auth said. */
  clientName = '';

  constructor(
    socket: net.Socket,
    private readonly context: ClientLinkContext,
  ) {
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.channel = new FramedSocket(socket, {
      limits: HANDSHAKE_LIMITS,
      onFrame: (frame, attachment) => this.onFrame(frame, attachment),
      onClose: (error) => void this.shutdown(error),
    });
    socket.on('data', () => this.liveness?.heard());
    this.handshake = new ServerHandshake({
      channel: this.channel,
      name: context.name,
      secret: context.secret,
      role: 'scheduler',
      logger: context.logger,
      peer: this.peer,
      heartbeatSeconds: context.heartbeatSeconds,
      zombieSeconds: context.zombieSeconds,
    });
    this.handlers = {
      setup: (setup, frame) => void this.setup(setup, frame.requestId),
      fileChunk: (chunk, _frame, attachment) => this.files().receive(chunk, attachment),
      job: (job, _frame, attachment) => this.jobs.submit(job, attachment),
      cancel: (cancel) => this.jobs.cancel(cancel),
      close: (close, frame) =>
        void (close.nodeKey ? this.nodeRequests.closeNode(close, frame.requestId) : this.close(close.computeId, frame.requestId)),
      jobAck: (ack) => this.acknowledged(ack),
      pulse: () => undefined,
      reattach: (reattach, frame) => this.reattach(reattach.computeId, frame.requestId),
      ...NOT_ON_SHARED_LINK,
      setupReply: UNEXPECTED,
      jobReply: UNEXPECTED,
      closeReply: UNEXPECTED,
      error: UNEXPECTED,
      setCpus: (request, frame) => void this.nodeRequests.setCpus(request, frame.requestId),
      allocate: (request, frame) => void this.allocations.handle(request, frame.requestId),
      deallocate: (request, frame) => this.nodeRequests.deallocate(request, frame.requestId),
      fileDone: (done) => context.nodeOps.jobFileDone(this, done),
      allocateReply: UNEXPECTED,
      deallocateReply: UNEXPECTED,
      setCpusReply: UNEXPECTED,
      fileWant: UNEXPECTED,
      reattachReply: UNEXPECTED,
      nodeStatus: UNEXPECTED,
      jobEvent: UNEXPECTED,
    } satisfies FrameTable;
    this.nodeRequests = new ClientNodeRequests({
      computations: this.computations,
      nodeOps: context.nodeOps,
      logger: context.logger,
      send: (frame) => this.send(frame),
    });
    this.jobs = new ClientJobs({
      computations: this.computations,
      submit: (request) => context.submit(request),
      cancel: (job) => context.cancel(job),
      send: (frame) => this.send(frame),
    });
    this.allocations = new ClientAllocations({
      logger: context.logger,
      peer: this.peer,
      send: (frame) => this.send(frame),
      dirOf: (computeId) => path.join(context.fileDir, computeId),
      isAdded: (computeId) => this.computations.get(computeId)?.added === true,
      apply: (computeId, allocations) => context.nodeOps.allocate(computeId, allocations),
    });
  }

  /** Computations of this client and their jobs not ended yet. */
  status(): { client: string; computations: { name: string; jobs: number }[] } {
    return {
      client: `${this.clientName || this.peer} (${this.peer})`,
      computations: [...this.computations.values()].map(({ name, jobs }) => ({ name, jobs: jobs.size })),
    };
  }

  /** Whether the client has authenticated (and not gone). */
  get isAuthenticated(): boolean {
    return this.authenticated && !this.closed;
  }

  /**
   * Ends the connection. Its computations set up are kept for the client to take back (with a
   * `kept` registry, unless `closeAll`: the scheduler stops), else closed on their nodes (running
   * jobs terminated) and their files removed. Never rejects.
   */
  async shutdown(error?: Error, { closeAll = false }: { closeAll?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handshake.cancel();
    this.liveness?.stop();
    const { logger, kept } = this.context;
    const keep = kept && !closeAll ? [...this.computations.values()].filter((computation) => computation.added) : [];
    if (this.authenticated) {
      const count = this.computations.size - keep.length;
      const plural = (n: number) => `${n} computation${n === 1 ? '' : 's'}`;
      logger.info(
        `client ${this.clientName || this.peer} (${this.peer}) disconnected${error ? `: ${error.message}` : ''}` +
          (keep.length > 0 ? `; keeping its ${plural(keep.length)} for ${kept!.graceSeconds} s, for it to reconnect` : '') +
          (count > 0 ? `; closing ${keep.length > 0 ? 'the other ' : 'its '}${plural(count)} and terminating their running jobs` : ''),
      );
    }
    // A scheduler that stops says so: its clients do not wait to reconnect (as a node that stops).
    if (closeAll && this.authenticated)
      this.channel.end({ error: { code: ErrorCode.NODE_STOPPED, message: error?.message ?? 'dispyscheduler is stopping' } });
    else this.channel.destroy();
    const lastHeard = Date.now();
    for (const computation of keep) {
      this.computations.delete(computation.computeId);
      kept!.detach(computation, lastHeard);
    }
    await this.receiver?.abort().catch(() => undefined);
    await this.allocations.close();
    await Promise.all([...this.computations.keys()].map((computeId) => this.forget(computeId)));
    this.context.onEnd(this);
  }

  private onFrame(frame: Frame, attachment?: Buffer[]): void {
    if (this.closed) return;
    if (!this.authenticated) {
      const name = this.handshake.receive(frame);
      if (name === undefined) return;
      this.authenticated = true;
      this.clientName = name;
      this.channel.setLimits(SESSION_LIMITS);
      this.context.logger.info(`client ${name} (${this.peer}) authenticated`);
      this.liveness = new LinkLiveness({
        heartbeatSeconds: this.context.heartbeatSeconds,
        pulse: () => this.send({ pulse: {} }),
        onSilent: (seconds) => void this.shutdown(new Error(`it sent nothing for ${Math.round(seconds)} s; presumed dead`)),
      });
      return;
    }
    if (dispatchFrame(this.handlers, frame, attachment) === UNEXPECTED) {
      this.send({ requestId: frame.requestId, error: { code: ErrorCode.PROTOCOL, message: `unexpected ${frame.kind} frame` } });
    }
  }

  private send(frame: FrameInit, attachment?: Buffer[]): void {
    if (this.closed) return;
    this.liveness?.sent();
    this.channel.send(frame, attachment);
  }

  /** Setup: takes the depends files (FileWant), then adds the computation to the scheduler and answers SetupReply. */
  private async setup(setup: dispy.Setup, requestId: number): Promise<void> {
    const { computeId } = setup;
    const refuse = (error: string): void => this.send({ requestId, setupReply: { computeId, ok: false, error } });
    if (!COMPUTE_ID.test(computeId) || RESERVED_IDS.has(computeId))
      return refuse(`compute id ${JSON.stringify(computeId)} is not letters, digits, - and _ (or is reserved)`);
    if (this.computations.has(computeId)) return refuse(`computation ${computeId} is set up already`);
    if (!(await this.replaceKept(computeId))) return refuse(`computation ${computeId} is set up already, by another connection`);
    const names = setup.files.map((file) => file.name ?? '');
    const badName = names.find((name) => name !== path.basename(name) || name === '.' || name === '..' || name === '');
    if (badName !== undefined) return refuse(`depends file ${JSON.stringify(badName)} must be a plain file name`);
    const dir = path.join(this.context.fileDir, computeId);
    const computation: ClientComputation = {
      computeId,
      name: setup.name,
      dir,
      jobs: new Map(),
      added: false,
      jobFiles: new Map(),
      replies: this.context.kept?.newReplies(computeId) ?? new KeptReplies(this.context.fileDir, computeId, this.context.logger),
    };
    this.attach(computation);
    this.computations.set(computeId, computation);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      if (names.length > 0) {
        const arrived = new Promise<void>((resolve, reject) => {
          computation.waiting = new Set(names);
          computation.arrived = (name, error) => {
            if (error) reject(error);
            computation.waiting?.delete(name);
            if (computation.waiting?.size === 0) resolve();
          };
        });
        this.send({ requestId, fileWant: { computeId, names } });
        await arrived;
      }
      const files: LocalFile[] = setup.files.map((file, index) => ({
        name: names[index]!,
        path: path.join(dir, names[index]!),
        size: Number(file.size ?? 0),
        mode: (file.mode ?? 0o644) & 0o777,
      }));
      const nodes = await resolveNodePatterns(setup.nodes, (name) =>
        this.context.logger.debug(`client ${this.peer}: node ${name} does not resolve; matched by name only`),
      );
      if (this.closed || this.computations.get(computeId) !== computation) return;
      await this.context.addComputation(setup, files, nodes, computationEvents(computation), this.allocations.takeEarly(computeId));
      computation.added = true;
      this.context.kept?.register(computation);
      this.context.logger.info(`client ${this.clientName} (${this.peer}): computation ${setup.name} (${computeId}) added`);
      this.send({ requestId, setupReply: { computeId, ok: true, heartbeatInterval: this.context.heartbeatSeconds } });
    } catch (error) {
      refuse((error as Error).message);
      await this.forget(computeId);
    }
  }

  /** Receives depends files into their computation's directory and answers each with FileDone. */
  private files(): FileReceiver {
    this.receiver ??= clientFileReceiver({
      computations: this.computations,
      toNodes: this.nodeRequests,
      allocations: this.allocations,
      maxFileSize: this.context.maxFileSize,
      pause: () => this.channel.socket.pause(),
      resume: () => this.channel.socket.resume(),
      send: (frame) => this.send(frame),
    });
    return this.receiver;
  }

  /** Cancels a job of one of this connection's computations as its client would (dispyscheduler's monitor page); false when it is not one. */
  cancelJob(computeId: string, jobId: number): boolean {
    return this.jobs.cancel({ computeId, jobId } as dispy.Cancel);
  }

  private async close(computeId: string, requestId: number): Promise<void> {
    await this.forget(computeId);
    this.send({ requestId, closeReply: { computeId } });
  }

  /** Closes a computation on its nodes (if it was added), forgets it and its replies, and removes its files. */
  private async forget(computeId: string): Promise<void> {
    const computation = this.computations.get(computeId);
    if (!computation) return;
    this.computations.delete(computeId);
    await this.closeAndForget(computation);
  }

  private async closeAndForget(computation: ClientComputation): Promise<void> {
    const { computeId } = computation;
    this.context.kept?.remove(computation);
    computation.link = undefined;
    computation.arrived?.('', new Error('the computation was closed'));
    if (computation.added) {
      computation.added = false;
      await this.context
        .closeComputation(computeId)
        .catch((error: Error) => this.context.logger.warn(`closing ${computeId}: ${error.message}`));
    }
    await computation.replies.forget();
    if (computation.dir) await rm(computation.dir, { recursive: true, force: true }).catch(() => undefined);
  }

  // --- Computations that outlive the connection (a lost client's, kept for it to take back) ---

  /** Makes this connection the one the computation's frames and replies go to. */
  private attach(computation: ClientComputation): ReturnType<KeptReplies['attach']> {
    computation.link = {
      send: (frame) => {
        this.send(frame);
        return !this.closed && this.channel.bufferedBytes < DRAIN_ABOVE_BYTES;
      },
      drain: () => this.channel.drain(),
      letGo: (letGo) => {
        if (this.computations.get(letGo.computeId) === letGo) this.computations.delete(letGo.computeId);
      },
    };
    this.computations.set(computation.computeId, computation);
    return computation.replies.attach(computation.link);
  }

  /**
   * A Setup of a computation the scheduler keeps for a lost connection: its client gave it up
   * (its SetupReply was lost with the link, or the computation was lost to it), so the one kept is
   * closed and forgotten first. False when another connection holds it.
   */
  private async replaceKept(computeId: string): Promise<boolean> {
    const kept = this.context.kept?.get(computeId);
    if (!kept) return true;
    if (kept.link) return false;
    this.context.logger.info(
      `client ${this.clientName} (${this.peer}): computation ${computeId} set up again; the one kept for it is closed`,
    );
    await this.closeAndForget(kept);
    return !this.closed;
  }

  /**
   * Reattach: a client (reconnected, or recoverJobs in a new process) takes back a computation
   * the scheduler keeps. Answers ReattachReply with the jobs it holds, then resends every reply not
   * yet acknowledged, as a node does.
   */
  private reattach(computeId: string, requestId: number): void {
    const computation = this.context.kept?.get(computeId) ?? this.computations.get(computeId);
    if (!computation) {
      const error = `no computation ${computeId} at dispyscheduler: never set up here, closed, or its replies expired`;
      this.send({ requestId, reattachReply: { computeId, ok: false, error } });
      return;
    }
    if (computation.waiting) {
      this.send({ requestId, reattachReply: { computeId, ok: false, error: `computation ${computeId} is being set up` } });
      return;
    }
    // A connection the scheduler still thinks alive (its client saw the link die first) lets go of it.
    computation.link?.letGo(computation);
    this.context.kept?.attached(computation);
    const { savedReplies, resend } = this.attach(computation);
    const heldJobIds = [...computation.jobs.keys()];
    const live = computation.added;
    this.send({ requestId, reattachReply: { computeId, ok: true, live, heldJobIds, savedReplies } });
    this.context.logger.info(
      `client ${this.clientName} (${this.peer}) took computation ${computation.name} (${computeId}) back` +
        ` (${live ? 'live' : 'replies only'}): ${heldJobIds.length} jobs held, ${savedReplies} replies resent`,
    );
    resend().catch((error: Error) => this.context.logger.error(`resending replies of ${computeId}: ${error.message}`));
  }

  /** JobAck: the client has these replies (of one computation, or of every computation of this connection). */
  private acknowledged(ack: dispy.JobAck): void {
    const jobIds = ack.jobIds.map(Number);
    if (ack.computeId) {
      this.computations.get(ack.computeId)?.replies.acknowledged(jobIds);
      return;
    }
    for (const computation of this.computations.values()) computation.replies.acknowledged(jobIds);
  }

  // ---- Files of jobs and node operations (SharedJobCluster's sendFile, closeNode, deallocateNode, setNodeCpus) ----

  /** Sends a chunk of a file a job of this client sent (relayed from its node); false when the client is gone. */
  relayFile(chunk: dispy.IFileChunk, attachment?: Attachment): boolean {
    if (this.closed) return false;
    this.liveness?.sent();
    this.channel.send({ fileChunk: chunk }, attachment);
    return true;
  }

  /** Bytes queued toward the client. */
  get bufferedBytes(): number {
    return this.channel.bufferedBytes;
  }

  /** Resolves when the client's socket takes more (or is closed). */
  drain(): Promise<void> {
    return this.channel.drain();
  }

  /** Whether this connection holds the computation now (a lost client's is held by none until it reattaches). */
  holds(computeId: string): boolean {
    return this.nodeRequests.owns(computeId);
  }
}
