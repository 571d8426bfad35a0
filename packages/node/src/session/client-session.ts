import type { Socket } from 'node:net';
import {
  FileReceiver,
  FramedSocket,
  PROTOCOL_VERSION,
  confine,
  sendFileChunks,
  clientProof,
  dispy,
  macEquals,
  newNonce,
  nodeProof,
  type Frame,
} from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import { Computation } from '../execution/computation.js';
import { measureAvailInfo } from '../avail-info.js';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { ReceivedFile } from '@dispy/protocol';
import type { JobOutcome } from '../execution/worker-pool.js';

/** What a session needs of the node serving it. */
export interface NodeContext {
  readonly name: string;
  readonly secret: string;
  /** CPUs the node offers now (0: it takes no new jobs). */
  readonly cpus: number;
  readonly destPathPrefix: string;
  readonly logger: Logger;
  /** Largest file transferred either way, in bytes (0: no limit). */
  readonly maxFileSize: number;
  /** A client silent this long (ms) is presumed gone: its computations are closed. */
  readonly zombieIntervalMs: number;
  /** A computation of this session asked the node to shut down. */
  requestShutdown(session: ClientSession): void;
  /** Makes `session` the node's client; false when another client holds the node. */
  claim(session: ClientSession): boolean;
  release(session: ClientSession): void;
}

/** Seconds a client has to authenticate after connecting. */
const AUTH_TIMEOUT_MS = 10_000;

/**
 * One client's persistent connection to this node: authentication, then its computations and
 * jobs, all multiplexed on the same socket. Replies are kept until the client acknowledges them.
 */
export class ClientSession {
  readonly peer: string;
  private readonly channel: FramedSocket;
  private readonly nonce = newNonce();
  private authenticated = false;
  private readonly computations = new Map<string, Computation>();
  /** Computations whose setup waits for files. */
  private readonly preparing = new Map<string, Computation>();
  private readonly files: FileReceiver;
  /** Transfers of files to the client (dispySendFile), by transfer id. */
  private readonly outgoing = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
  private nextTransfer = 1;
  private readonly unacked = new Map<number, dispy.IJobReply>();
  private readonly authTimer: NodeJS.Timeout;
  private pulseTimer?: NodeJS.Timeout;
  private zombieTimer?: NodeJS.Timeout;
  private lastHeard = Date.now();
  private closed = false;
  /** A computation of this client was set up here (the node counts it as a client served). */
  servedComputation = false;

  constructor(
    socket: Socket,
    private readonly node: NodeContext,
    private readonly onEnd: (session: ClientSession) => void,
  ) {
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.channel = new FramedSocket(socket, {
      onFrame: (frame, attachment) => this.onFrame(frame, attachment),
      onClose: (error) => void this.shutdown(error),
    });
    this.files = new FileReceiver({
      rootFor: (chunk) => {
        const computation = this.computations.get(chunk.computeId ?? '') ?? this.preparing.get(chunk.computeId ?? '');
        if (!computation) throw new Error(`no computation ${chunk.computeId} here`);
        return computation.dir;
      },
      maxFileSize: node.maxFileSize,
      pause: () => socket.pause(),
      resume: () => socket.resume(),
      onDone: (transferId, result, about) => this.fileReceived(transferId, result, about),
    });
    this.authTimer = setTimeout(() => {
      node.logger.warn(`client ${this.peer} did not authenticate in time; disconnected`);
      this.channel.destroy();
    }, AUTH_TIMEOUT_MS);
    this.channel.send({ hello: { version: PROTOCOL_VERSION, nonce: this.nonce, name: node.name } });
  }

  /** CPUs in use by this client's computations and the jobs running now. */
  status(): { computations: number; running: number } {
    let running = 0;
    for (const computation of this.computations.values()) running += computation.runningJobs().length;
    return { computations: this.computations.size, running };
  }

  /** Ends the session: kills this client's jobs and removes its computations. */
  async shutdown(error?: Error): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.authTimer);
    clearInterval(this.pulseTimer);
    clearInterval(this.zombieTimer);
    if (error) this.node.logger.info(`client ${this.peer} disconnected: ${error.message}`);
    this.channel.destroy();
    await this.files.abort();
    for (const transfer of this.outgoing.values()) transfer.reject(new Error('the client went away'));
    const closing = [...this.computations.values(), ...this.preparing.values()].map((computation) => computation.close());
    this.computations.clear();
    this.preparing.clear();
    await Promise.allSettled(closing);
    this.node.release(this);
    this.onEnd(this);
  }

  private onFrame(frame: Frame, attachment?: Buffer[]): void {
    this.lastHeard = Date.now();
    if (!this.authenticated) {
      this.authenticate(frame);
      return;
    }
    switch (frame.kind) {
      case 'setup':
        void this.setup(frame.setup as dispy.Setup);
        break;
      case 'job':
        this.runJob(frame.job as dispy.Job, attachment);
        break;
      case 'setCpus':
        void this.setCpus(frame.setCpus as dispy.SetCpus);
        break;
      case 'cancel': {
        const { computeId, jobId } = frame.cancel as dispy.Cancel;
        if (!this.computations.get(computeId)?.cancel(Number(jobId))) {
          this.node.logger.debug(`cancel of job ${jobId}: not here (already done)`);
        }
        break;
      }
      case 'pulse':
        break; // the client's heartbeat: lastHeard is all it is for
      case 'fileChunk':
        this.files.receive(frame.fileChunk as dispy.FileChunk, attachment);
        break;
      case 'fileKept':
        (this.computations.get(frame.fileKept!.computeId ?? '') ?? this.preparing.get(frame.fileKept!.computeId ?? ''))?.fileArrived(frame.fileKept!.name ?? '');
        break;
      case 'fileDone': {
        const { transferId, ok, error } = frame.fileDone as dispy.FileDone;
        const transfer = this.outgoing.get(Number(transferId));
        this.outgoing.delete(Number(transferId));
        if (ok) transfer?.resolve();
        else transfer?.reject(new Error(error || 'the client refused the file'));
        break;
      }
      case 'jobAck':
        for (const jobId of frame.jobAck!.jobIds ?? []) this.unacked.delete(Number(jobId));
        break;
      case 'close':
        void this.closeComputation(frame.close as dispy.Close);
        break;
      case 'error':
        this.node.logger.warn(`client ${this.peer} reported: ${frame.error!.message}`);
        break;
      default:
        this.channel.send({ error: { code: 'DISPY_ERR_PROTOCOL', message: `unexpected ${frame.kind} frame` } });
    }
  }

  private authenticate(frame: Frame): void {
    const { logger, secret } = this.node;
    if (frame.kind !== 'auth') {
      this.channel.destroy(new Error(`expected auth, got ${frame.kind}`));
      return;
    }
    const auth = frame.auth as dispy.Auth;
    if (auth.version !== PROTOCOL_VERSION) {
      logger.warn(`client ${this.peer} speaks protocol ${auth.version}, this node ${PROTOCOL_VERSION}; refused`);
      this.channel.end({ authResult: { ok: false, reason: `node speaks protocol ${PROTOCOL_VERSION}, client ${auth.version}` } });
      return;
    }
    if (!macEquals(clientProof(secret, this.nonce, auth.nonce), auth.mac)) {
      logger.warn(`client ${this.peer} failed authentication: its secret differs from this node's; refused`);
      this.channel.end({ authResult: { ok: false, reason: "the client's secret does not match the node's" } });
      return;
    }
    clearTimeout(this.authTimer);
    this.authenticated = true;
    logger.info(`client ${auth.clientName || this.peer} (${this.peer}) authenticated`);
    this.channel.send({ authResult: { ok: true, mac: nodeProof(secret, auth.nonce, this.nonce) } });
  }

  private async setup(setup: dispy.Setup): Promise<void> {
    const { computeId } = setup;
    const refuse = (error: string) => this.channel.send({ setupReply: { computeId, ok: false, error } });
    if (!this.node.claim(this)) {
      refuse('the node is serving another client; try again when it is free');
      return;
    }
    if (this.computations.has(computeId)) {
      refuse(`computation ${computeId} is already set up`);
      return;
    }
    if (this.node.cpus === 0) {
      refuse('the node takes no new jobs now');
      if (this.computations.size === 0) this.node.release(this);
      return;
    }
    const wanted = setup.cpus > 0 ? Math.min(setup.cpus, this.node.cpus) : this.node.cpus;
    let computation: Computation | undefined;
    try {
      computation = await Computation.prepare({
        setup,
        cpus: wanted,
        destPathPrefix: this.node.destPathPrefix,
        nodeName: this.node.name,
        nodeAddress: this.channel.socket.localAddress ?? '',
        logger: this.node.logger,
        onDone: (outcome) => this.reply(computeId, outcome),
        onShutdownRequest: () => this.node.requestShutdown(this),
        onProvisional: (jobId, result) => this.channel.send({ jobReply: { computeId, jobId, status: dispy.JobStatus.PROVISIONAL, result } }),
        onSendFile: (jobId, file) => this.sendFileToClient(computation!, jobId, file),
      });
      this.preparing.set(computeId, computation);
      const limit = this.node.maxFileSize;
      const tooLarge = (setup.files ?? []).find((file) => limit > 0 && Number(file.size) > limit);
      if (tooLarge) {
        throw new Error(`file ${tooLarge.name} of ${tooLarge.size} bytes exceeds this node's limit of ${limit} bytes (--max-file-size)`);
      }
      const { send, have } = await computation.wantedFiles(setup.files ?? []);
      if (send.length > 0 || have.length > 0) {
        this.channel.send({ fileWant: { computeId, names: send, have } });
        // The client answers each `have` with the file (it differs) or FileKept (it is the same).
        await computation.awaitFiles([...send, ...have.map((file) => file.name!)]);
      }
      await computation.start();
      this.preparing.delete(computeId);
      if (this.closed) {
        await computation.close();
        return;
      }
      this.computations.set(computeId, computation);
      this.servedComputation = true;
      this.startPulses(setup.pulseInterval);
      this.watchForZombie();
      this.node.logger.info(`computation ${setup.name} (${computeId}) set up for ${this.peer} with ${wanted} CPUs`);
      this.channel.send({
        setupReply: { computeId, ok: true, cpus: wanted, destPath: computation.dir, heartbeatInterval: this.heartbeatSeconds() },
      });
    } catch (error) {
      this.preparing.delete(computeId);
      await computation?.close().catch(() => undefined);
      this.node.logger.warn(`setup of ${setup.name} for ${this.peer} failed: ${(error as Error).message}`);
      refuse((error as Error).message);
      if (this.computations.size === 0) this.node.release(this);
    }
  }

  /** A file sent by the client arrived (or failed): tell it, and whoever waits for the file. */
  private fileReceived(transferId: number, result: ReceivedFile | Error, about: { name: string; computeId: string; jobId: number }): void {
    const failed = result instanceof Error ? result : undefined;
    if (failed) this.node.logger.warn(`file from ${this.peer} refused: ${failed.message}`);
    this.channel.send({ fileDone: failed ? { transferId, ok: false, error: failed.message } : { transferId, ok: true } });
    (this.computations.get(about.computeId) ?? this.preparing.get(about.computeId))?.fileArrived(about.name, failed, about.jobId);
  }

  /** dispySendFile: streams a file of a job's directory to the client, size-limited. */
  private async sendFileToClient(computation: Computation, jobId: number, file: string): Promise<void> {
    const name = path.relative(computation.dir, file);
    confine(computation.dir, name); // refuses a file outside the computation's directory
    const info = await stat(file);
    const limit = this.node.maxFileSize;
    if (limit > 0 && info.size > limit) {
      throw new Error(`${name} is ${info.size} bytes, over the node's limit of ${limit} bytes (--max-file-size)`);
    }
    const transferId = this.nextTransfer++;
    const arrived = new Promise<void>((resolve, reject) => this.outgoing.set(transferId, { resolve, reject }));
    await sendFileChunks(this.channel, { transferId, file, name, computeId: computation.id, jobId });
    await arrived;
  }

  private runJob(job: dispy.Job, args: Buffer[] | undefined): void {
    if (!args) {
      this.channel.send({ error: { code: 'DISPY_ERR_PROTOCOL', message: `job ${job.jobId} came without its arguments`, jobId: job.jobId } });
      return;
    }
    const computation = this.computations.get(job.computeId);
    if (!computation) {
      this.channel.send({ error: { code: 'DISPY_ERR_NO_COMPUTATION', message: `no computation ${job.computeId} here`, jobId: job.jobId } });
      return;
    }
    if (this.node.cpus === 0) {
      // Service stopped (or the owner set 0 CPUs): the scheduler sends the job elsewhere.
      this.channel.send({ error: { code: 'DISPY_ERR_NODE_STOPPED', message: 'the node takes no new jobs now', jobId: job.jobId } });
      return;
    }
    computation.run(job, args);
  }

  /** The client wants another number of CPUs for a computation (at most what the node offers). */
  private async setCpus(request: dispy.SetCpus): Promise<void> {
    const { computeId } = request;
    const computation = this.computations.get(computeId);
    if (!computation) {
      this.channel.send({ setCpusReply: { computeId, cpus: 0, error: `no computation ${computeId} here` } });
      return;
    }
    const cpus = Math.min(request.cpus, this.node.cpus);
    await computation.resize(Math.max(cpus, 1));
    this.channel.send({ setCpusReply: { computeId, cpus } });
  }

  /** The node's CPUs changed (its owner, or service hours): tell the client, resize the pools. */
  nodeCpusChanged(cpus: number): void {
    if (!this.authenticated || this.closed) return;
    for (const computation of this.computations.values()) {
      void computation.resize(Math.max(1, Math.min(cpus, computation.requestedCpus)));
    }
    this.channel.send({ nodeCpus: { cpus } });
  }

  /** How often the client should send a heartbeat: five per zombie interval. */
  private heartbeatSeconds(): number {
    return this.node.zombieIntervalMs / 5 / 1000;
  }

  /** Closes this client's computations when it has been silent for the zombie interval. */
  private watchForZombie(): void {
    if (this.zombieTimer) return;
    this.zombieTimer = setInterval(() => {
      const silentMs = Date.now() - this.lastHeard;
      if (silentMs <= this.node.zombieIntervalMs) return;
      this.node.logger.warn(
        `client ${this.peer} silent for ${(silentMs / 60_000).toFixed(2)} min (zombie interval): closing its computations`,
      );
      void this.shutdown();
    }, Math.max(100, this.node.zombieIntervalMs / 5));
    this.zombieTimer.unref();
  }

  /** Starts pulses every `seconds`: proof of life with the node's availability. */
  private startPulses(seconds: number): void {
    if (this.pulseTimer || seconds <= 0) return;
    this.pulseTimer = setInterval(() => {
      void measureAvailInfo(this.node.destPathPrefix).then((availInfo) => {
        if (!this.closed) this.channel.send({ pulse: { busy: this.status().running, availInfo } });
      });
    }, seconds * 1000);
    this.pulseTimer.unref();
  }

  private reply(computeId: string, outcome: JobOutcome): void {
    const reply: dispy.IJobReply = {
      computeId,
      jobId: outcome.jobId,
      status: outcome.ok
        ? dispy.JobStatus.FINISHED
        : outcome.cancelled
          ? dispy.JobStatus.CANCELLED
          : dispy.JobStatus.TERMINATED,
      result: outcome.result,
      stdout: outcome.stdout,
      stderr: outcome.stderr,
      exception: outcome.exception ?? '',
      startTime: outcome.startTime,
      endTime: outcome.endTime,
      cpuTime: outcome.cpuTime,
    };
    this.unacked.set(outcome.jobId, reply);
    this.channel.send({ jobReply: reply });
  }

  private async closeComputation(close: dispy.Close): Promise<void> {
    const computation = this.computations.get(close.computeId);
    this.computations.delete(close.computeId);
    await computation?.close();
    this.channel.send({ closeReply: { computeId: close.computeId } });
    if (this.computations.size === 0) this.node.release(this);
  }
}
