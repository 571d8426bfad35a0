import { lookup } from 'node:dns/promises';
import { mkdirSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import {
  DispyError,
  ErrorCode,
  FileReceiver,
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
  type ReceivedFile,
} from '@dispy/protocol';
import { KeptReplies, type Logger } from '@dispy/protocol/internal';
import { LinkLiveness } from '../session/link-liveness.js';
import type { JobPin, LocalFile, NodeInfo, SchedulerJob, ComputationEvents, JobOutcome, JobEndStatus } from '../cluster/types.js';
import type { ClientComputation, ClientJobRef, KeptClientComputations } from './kept-client-computations.js';
import { WIRE_STATUS, describeNode } from './wire-node.js';
import { ClientAllocations, type ClientAllocation } from './client-allocations.js';

export type { ClientJobRef } from './kept-client-computations.js';

/** What a client's connection needs of the scheduler that hosts it. */
export interface ClientLinkContext {
  /** The cluster secret. */
  readonly secret: string;
  readonly logger: Logger;
  /** Told to the client in AuthResult: seconds between heartbeats (a client silent for 4 of them is presumed dead). */
  readonly heartbeatSeconds: number;
  readonly zombieSeconds: number;
  /** The scheduler's name, sent in AuthResult. */
  readonly name: string;
  /** Where the depends files of the clients' computations are kept, one directory per computation. */
  readonly fileDir: string;
  /** Largest depends file accepted, in bytes (0: no limit). */
  readonly maxFileSize: number;
  /**
   * Adds a client's computation to the scheduler (its depends files are in place); `allocations`
   * (sent before the Setup, with per-node depends, setup arguments or CPUs) replace `nodes`.
   */
  addComputation(
    setup: dispy.Setup,
    files: LocalFile[],
    nodes: string[],
    events: ComputationEvents<ClientJobRef>,
    allocations?: ClientAllocation[],
  ): Promise<void>;
  /** The node operations of a client's computation (SharedJobCluster's sendFile, allocateNode, closeNode, ...). */
  readonly nodeOps: ClientNodeOps;
  submit(request: {
    computeId: string;
    priority: number;
    ref: ClientJobRef;
    args: Uint8Array;
    pin?: JobPin;
    timeout?: number;
    definitions?: dispy.IDefinition[];
    /** Per-job depends files, in place at the scheduler (paths). */
    files?: string[];
  }): SchedulerJob<ClientJobRef>;
  cancel(job: SchedulerJob<ClientJobRef>): 'dequeued' | 'sent' | 'unknown';
  /** Closes a computation on its nodes (its running jobs are terminated) and forgets its jobs. */
  closeComputation(computeId: string): Promise<void>;
  /** The connection has ended and its computations are closed (or kept, see `kept`). */
  onEnd(link: ClientLink): void;
  /**
   * Where computations outlive their connection: a lost client's are kept for it to take back
   * (Reattach) and their replies saved. Without it, they are closed when the connection ends.
   */
  readonly kept?: KeptClientComputations;
}

/** What a client may do to its computation on one node, through the scheduler (as JobCluster does to its own). */
export interface ClientNodeOps {
  /** Copies a file (in place at the scheduler) to a node; false when the node does not serve the computation. */
  sendFile(computeId: string, nodeKey: string, file: LocalFile): Promise<boolean>;
  closeNode(computeId: string, nodeKey: string, terminatePending: boolean): Promise<boolean>;
  deallocate(computeId: string, nodeKey: string): boolean;
  allocate(computeId: string, allocations: ClientAllocation[]): Promise<void>;
  /** Changes the CPUs a computation uses on a node, if the scheduler lets clients (--cooperative, or an exclusive computation). */
  setNodeCpus(computeId: string, nodeKey: string, cpus: number): Promise<dispy.ISetCpusReply>;
  /** The client answered a file a job of its sent (relayed by the scheduler). */
  jobFileDone(client: ClientLink, done: dispy.FileDone): void;
}

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
  /** sendFile transfers arriving (FileChunk naming a node), by transfer id. */
  private readonly toNodes = new Map<number, { computeId: string; nodeKey: string; dir: string }>();
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
      job: (job, _frame, attachment) => this.job(job, attachment),
      cancel: (cancel) => this.cancel(cancel),
      close: (close, frame) => void (close.nodeKey ? this.closeNode(close, frame.requestId) : this.close(close.computeId, frame.requestId)),
      jobAck: (ack) => this.acknowledged(ack),
      pulse: () => undefined,
      reattach: (reattach, frame) => this.reattach(reattach.computeId, frame.requestId),
      hello: UNEXPECTED,
      auth: UNEXPECTED,
      authResult: UNEXPECTED,
      setupReply: UNEXPECTED,
      jobReply: UNEXPECTED,
      closeReply: UNEXPECTED,
      error: UNEXPECTED,
      setCpus: (request, frame) => void this.setCpus(request, frame.requestId),
      allocate: (request, frame) => void this.allocations.handle(request, frame.requestId),
      deallocate: (request, frame) => this.deallocate(request, frame.requestId),
      fileDone: (done) => context.nodeOps.jobFileDone(this, done),
      allocateReply: UNEXPECTED,
      deallocateReply: UNEXPECTED,
      setCpusReply: UNEXPECTED,
      nodeCpus: UNEXPECTED,
      fileWant: UNEXPECTED,
      fileKept: UNEXPECTED,
      reattachReply: UNEXPECTED,
      nodeStatus: UNEXPECTED,
      jobEvent: UNEXPECTED,
      reclaim: UNEXPECTED,
      reclaimReply: UNEXPECTED,
    } satisfies FrameTable;
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
      const nodes = await this.resolveNodes(setup.nodes);
      if (this.closed || this.computations.get(computeId) !== computation) return;
      await this.context.addComputation(setup, files, nodes, this.eventsOf(computation), this.allocations.takeEarly(computeId));
      computation.added = true;
      this.context.kept?.register(computation);
      this.context.logger.info(`client ${this.clientName} (${this.peer}): computation ${setup.name} (${computeId}) added`);
      this.send({ requestId, setupReply: { computeId, ok: true, heartbeatInterval: this.context.heartbeatSeconds } });
    } catch (error) {
      refuse((error as Error).message);
      await this.forget(computeId);
    }
  }

  /** The client's `nodes`, with host names also as their addresses (a name that does not resolve stays a name). */
  private async resolveNodes(patterns: string[]): Promise<string[]> {
    const all = [...patterns];
    if (patterns.includes('*')) return [];
    for (const pattern of patterns) {
      if (pattern.includes('*') || net.isIP(pattern)) continue;
      try {
        all.push(...(await lookup(pattern, { all: true })).map(({ address }) => address));
      } catch {
        this.context.logger.debug(`client ${this.peer}: node ${pattern} does not resolve; matched by name only`);
      }
    }
    return all;
  }

  /** Receives depends files into their computation's directory and answers each with FileDone. */
  private files(): FileReceiver {
    this.receiver ??= new FileReceiver({
      rootFor: (chunk) => {
        if (chunk.nodeKey) return this.toNodeRoot(chunk);
        const allocation = this.allocations.rootFor(chunk);
        if (allocation !== undefined) return allocation;
        const computation = this.computations.get(chunk.computeId ?? '');
        const jobId = Number(chunk.jobId ?? 0);
        if (jobId > 0 && computation?.added) {
          // A per-job file: in a directory of the job's own, removed when the job ends.
          const dir = this.jobDir(computation, jobId);
          mkdirSync(dir, { recursive: true, mode: 0o700 });
          return dir;
        }
        if (!computation?.waiting?.has(chunk.path ?? ''))
          throw new Error(`no depends file ${chunk.path} is awaited for ${chunk.computeId}`);
        return computation.dir;
      },
      maxFileSize: this.context.maxFileSize,
      pause: () => this.channel.socket.pause(),
      resume: () => this.channel.socket.resume(),
      onDone: (transferId, result, about) => {
        if (this.toNodes.has(transferId)) return void this.forwardToNode(transferId, result);
        const failed = result instanceof Error ? result : undefined;
        this.send({ fileDone: failed ? { transferId, ok: false, error: failed.message } : { transferId, ok: true } });
        if (this.allocations.arrived(about.computeId, about.name, failed)) return;
        const computation = this.computations.get(about.computeId);
        if (about.jobId > 0 && computation?.added) {
          let files = computation.jobFiles.get(about.jobId);
          if (!files) computation.jobFiles.set(about.jobId, (files = { arrived: new Set() }));
          if (failed) files.failed ??= failed;
          else files.arrived.add(about.name);
          return;
        }
        computation?.arrived?.(about.name, failed);
      },
    });
    return this.receiver;
  }

  private job(job: dispy.Job, attachment: Buffer[] | undefined): void {
    const jobId = Number(job.jobId);
    const computation = this.computations.get(job.computeId);
    const fail = (why: string): void =>
      this.send({
        jobReply: { computeId: job.computeId, jobId, status: dispy.JobStatus.TERMINATED, exception: why, failed: true },
      });
    if (!computation?.added) return fail(`no computation ${job.computeId} is set up for this client at dispyscheduler`);
    if (computation.jobs.has(jobId)) return fail(`job ${jobId} of ${computation.name} was submitted already`);
    // Per-job files came before the Job frame, each answered with FileDone before the client sent it.
    const files = computation.jobFiles.get(jobId);
    if (job.files.length > 0) {
      if (files?.failed) return this.failWithFiles(computation, jobId, `its depends file could not be received: ${files.failed.message}`);
      const missing = job.files.find((name) => !files?.arrived.has(name));
      if (missing !== undefined)
        return this.failWithFiles(computation, jobId, `its depends file ${missing} did not arrive at dispyscheduler`);
    }
    const pin: JobPin | undefined = job.pinKey ? { key: job.pinKey } : job.pinHost ? { host: job.pinHost } : undefined;
    const submitted = this.context.submit({
      computeId: job.computeId,
      priority: Number.isFinite(job.priority) ? job.priority : 0,
      ref: { computeId: job.computeId, jobId },
      args: attachment && attachment.length === 1 ? attachment[0]! : Buffer.concat(attachment ?? []),
      pin,
      timeout: job.timeout > 0 ? job.timeout : undefined,
      definitions: job.definitions.length > 0 ? job.definitions : undefined,
      files: job.files.length > 0 ? job.files.map((name) => path.join(this.jobDir(computation, jobId), name)) : undefined,
    });
    computation.jobs.set(jobId, submitted);
  }

  private jobDir(computation: ClientComputation, jobId: number): string {
    return path.join(computation.dir, 'jobs', String(jobId));
  }

  /** A job whose per-job files are of no more use (it ended, or never started): they are removed. */
  private dropJobFiles(computation: ClientComputation, jobId: number): void {
    if (!computation.jobFiles.delete(jobId)) return;
    rm(this.jobDir(computation, jobId), { recursive: true, force: true }).catch(() => undefined);
  }

  private failWithFiles(computation: ClientComputation, jobId: number, why: string): void {
    this.dropJobFiles(computation, jobId);
    computation.replies.ended({
      computeId: computation.computeId,
      jobId,
      status: dispy.JobStatus.TERMINATED,
      exception: why,
      failed: true,
    });
  }

  /** Cancels a job of one of this connection's computations as its client would (dispyscheduler's monitor page); false when it is not one. */
  cancelJob(computeId: string, jobId: number): boolean {
    return this.cancel({ computeId, jobId } as dispy.Cancel);
  }

  private cancel(cancel: dispy.Cancel): boolean {
    const jobId = Number(cancel.jobId);
    const computation = this.computations.get(cancel.computeId);
    const job = computation?.jobs.get(jobId);
    if (!computation || !job) return false;
    const outcome = this.context.cancel(job);
    if (outcome === 'dequeued') {
      computation.jobs.delete(jobId);
      this.dropJobFiles(computation, jobId);
      computation.replies.ended({
        computeId: cancel.computeId,
        jobId,
        status: dispy.JobStatus.CANCELLED,
        exception: 'cancelled before it ran',
        failed: true,
      });
    }
    return outcome !== 'unknown';
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

  /**
   * The scheduler's events of a computation, as frames to the client connection that holds it now
   * (none while its link is lost). A job's end is a reply kept until the client acknowledges it
   * (saved to disk while the client is away); so is a job lost with its node while the client is away.
   */
  private eventsOf(computation: ClientComputation): ComputationEvents<ClientJobRef> {
    const { computeId } = computation;
    const send = (frame: FrameInit): void => void computation.link?.send(frame);
    const nodeStatus = (event: dispy.NodeStatus.Event, node: NodeInfo, extra: { lostJobIds?: number[]; why?: string } = {}): void =>
      send({ nodeStatus: { computeId, event, node: describeNode(node), ...extra } });
    const ended = (job: SchedulerJob<ClientJobRef>): number => {
      computation.jobs.delete(job.ref.jobId);
      this.dropJobFiles(computation, job.ref.jobId);
      return job.ref.jobId;
    };
    const reply = (
      job: SchedulerJob<ClientJobRef>,
      status: JobEndStatus,
      outcome: Partial<JobOutcome>,
      node?: NodeInfo,
      failed = false,
    ) => {
      // Jobs killed because their client was gone too long end Terminated, saying so.
      if (computation.closedBecause && status !== 'finished') {
        status = 'terminated';
        outcome = { ...outcome, exception: computation.closedBecause };
      }
      computation.replies.ended({
        computeId,
        jobId: ended(job),
        status: WIRE_STATUS[status],
        result: outcome.result,
        stdout: outcome.stdout,
        stderr: outcome.stderr,
        exception: outcome.exception,
        startTime: outcome.startTime,
        endTime: outcome.endTime,
        cpuTime: outcome.cpuTime,
        nodeKey: node?.key ?? '',
        failed,
      });
    };
    return {
      nodeUp: (node) => nodeStatus(dispy.NodeStatus.Event.UP, node),
      nodeDown: (node, lost, why) => {
        if (computation.link) nodeStatus(dispy.NodeStatus.Event.DOWN, node, { lostJobIds: lost.map(ended), why });
        else
          for (const job of lost)
            reply(job, 'cancelled', { exception: `node ${node.name} (${node.key}) went down: ${why}` }, undefined, true);
      },
      nodeFailed: (node, error) => nodeStatus(dispy.NodeStatus.Event.FAILED, node, { why: error }),
      nodeAvailInfo: (node) => nodeStatus(dispy.NodeStatus.Event.AVAIL, node),
      jobStarted: (job, node) =>
        send({ jobEvent: { computeId, jobId: job.ref.jobId, event: dispy.JobEvent.Event.STARTED, nodeKey: node.key } }),
      jobsRunning: (started, node) =>
        send({
          jobEvent: {
            computeId,
            event: dispy.JobEvent.Event.RUNNING,
            jobIds: started.map(({ job }) => job.ref.jobId),
            startTimes: started.map(({ startTime }) => startTime),
            nodeKey: node.key,
          },
        }),
      jobRequeued: (job, from) =>
        send({ jobEvent: { computeId, jobId: job.ref.jobId, event: dispy.JobEvent.Event.REQUEUED, nodeKey: from.key } }),
      jobProvisional: (job, result, node) =>
        send({
          jobReply: { computeId, jobId: job.ref.jobId, status: dispy.JobStatus.PROVISIONAL, result, nodeKey: node.key },
        }),
      jobDone: (job, outcome, node) => reply(job, outcome.status, outcome, node),
      jobFailed: (job, status, why, node) => reply(job, status, { exception: why }, node, true),
    };
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

  /** A sendFile's file (FileChunk naming a node) arrives in a directory of its own transfer, removed once forwarded. */
  private toNodeRoot(chunk: dispy.IFileChunk): string {
    const computation = this.computations.get(chunk.computeId ?? '');
    if (!computation?.added) throw new DispyError(ErrorCode.FILE, `no computation ${chunk.computeId} is set up for this client`);
    const name = chunk.path ?? '';
    if (name !== path.basename(name) || name === '.' || name === '..') {
      throw new DispyError(ErrorCode.FILE, `sendFile: ${JSON.stringify(name)} must be a plain file name`);
    }
    const dir = path.join(computation.dir, 'send', String(Number(chunk.transferId)));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.toNodes.set(Number(chunk.transferId), { computeId: computation.computeId, nodeKey: chunk.nodeKey ?? '', dir });
    return dir;
  }

  /** A sendFile's file is here (or failed): it goes on to its node, then the client hears how that went. */
  private async forwardToNode(transferId: number, result: ReceivedFile | Error): Promise<void> {
    const { computeId, nodeKey, dir } = this.toNodes.get(transferId)!;
    this.toNodes.delete(transferId);
    let answer: dispy.IFileDone = { transferId, ok: true };
    try {
      if (result instanceof Error) throw result;
      const file: LocalFile = { name: result.name, path: result.path, size: result.size, mode: (await stat(result.path)).mode & 0o777 };
      if (!(await this.context.nodeOps.sendFile(computeId, nodeKey, file))) {
        answer = { transferId, ok: false, code: ErrorCode.NO_COMPUTATION, error: `node ${nodeKey} does not serve the computation` };
      }
    } catch (error) {
      const code = DispyError.isInstance(error) ? error.code : ErrorCode.FILE;
      answer = { transferId, ok: false, code, error: (error as Error).message };
    } finally {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
    this.send({ fileDone: answer });
  }

  /** Whether this connection holds the computation now (a lost client's is held by none until it reattaches). */
  holds(computeId: string): boolean {
    return this.ownComputation(computeId);
  }

  private ownComputation(computeId: string): boolean {
    return this.computations.get(computeId)?.added === true;
  }

  private async closeNode(close: dispy.Close, requestId: number): Promise<void> {
    const { computeId, nodeKey } = close;
    let served = false;
    if (this.ownComputation(computeId)) {
      served = await this.context.nodeOps.closeNode(computeId, nodeKey, close.terminatePending).catch((error: Error) => {
        this.context.logger.warn(`closing ${computeId} on ${nodeKey}: ${error.message}`);
        return false;
      });
    }
    this.send({ requestId, closeReply: { computeId, notServed: !served } });
  }

  private deallocate(request: dispy.Deallocate, requestId: number): void {
    const ok = this.ownComputation(request.computeId) && this.context.nodeOps.deallocate(request.computeId, request.nodeKey);
    this.send({ requestId, deallocateReply: { computeId: request.computeId, ok } });
  }

  private async setCpus(request: dispy.SetCpus, requestId: number): Promise<void> {
    const { computeId, nodeKey, cpus } = request;
    const reply = this.ownComputation(computeId)
      ? await this.context.nodeOps.setNodeCpus(computeId, nodeKey, cpus)
      : { error: `no computation ${computeId} is set up for this client` };
    this.send({ requestId, setCpusReply: { computeId, ...reply } });
  }
}
