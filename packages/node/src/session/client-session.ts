import type { Socket } from 'node:net';
import {
  ErrorCode,
  FramedSocket,
  HANDSHAKE_LIMITS,
  SESSION_LIMITS,
  UNEXPECTED,
  dispatchFrame,
  type Frame,
  type FrameTable,
  type dispy,
} from '@dispy/protocol';
import { measureAvailInfo } from '../avail-info.js';
import { ComputationSetup } from './computation-setup.js';
import { SessionComputations } from './computations.js';
import { Handshake } from './handshake.js';
import { IncomingFiles } from './incoming-files.js';
import { JobLoop } from './job-loop.js';
import type { KeptComputation, ReplyLink } from './kept-computation.js';
import { Liveness } from './liveness.js';
import type { NodeContext } from './node-context.js';
import { OutgoingFiles } from './outgoing-files.js';

export type { NodeContext } from './node-context.js';

/**
 * One client's persistent connection to this node: the handshake, then its computations and
 * jobs, all multiplexed on the same socket. Each part lives in a file of its own; this class
 * routes the client's frames to them through one table and ends them together.
 */
export class ClientSession {
  readonly peer: string;
  private readonly channel: FramedSocket;
  private readonly handshake: Handshake;
  private readonly computations: SessionComputations;
  private readonly setup: ComputationSetup;
  private readonly jobs: JobLoop;
  private readonly incoming: IncomingFiles;
  private readonly outgoing: OutgoingFiles;
  private readonly liveness: Liveness;
  private authenticated = false;
  private closed = false;
  /** A computation of this client was set up here (the node counts it as a client served). */
  servedComputation = false;
  /** The CPUs the client was last told it may fill (at first, all the node offers). */
  private toldCpus = 0;

  /** What to do with each frame once the client has authenticated. */
  private readonly handlers = {
    hello: UNEXPECTED,
    auth: UNEXPECTED,
    authResult: UNEXPECTED,
    setup: (setup, frame) => void this.setup.setUp(setup, frame.requestId),
    setupReply: UNEXPECTED,
    job: (job, _frame, args) => this.jobs.run(job, args),
    jobReply: UNEXPECTED,
    jobAck: (ack) => this.jobs.acknowledged(ack),
    cancel: (cancel) => this.jobs.cancel(cancel),
    pulse: () => undefined, // the client's heartbeat: that it arrived is all it says
    close: (close, frame) => void this.computations.close(close, frame.requestId),
    closeReply: UNEXPECTED,
    error: (error) => this.node.logger.warn(`client ${this.peer} reported: ${error.message}`),
    fileChunk: (chunk, _frame, data) => this.incoming.chunk(chunk, data),
    setCpus: (request, frame) => void this.computations.setCpus(request, frame.requestId),
    setCpusReply: UNEXPECTED,
    nodeCpus: UNEXPECTED,
    fileWant: UNEXPECTED,
    fileDone: (done) => this.outgoing.done(done),
    fileKept: (kept) => this.incoming.kept(kept),
    reattach: (reattach, frame) => this.reattach(reattach, frame.requestId),
    reattachReply: UNEXPECTED,
    nodeStatus: UNEXPECTED,
    jobEvent: UNEXPECTED,
    allocate: UNEXPECTED,
    allocateReply: UNEXPECTED,
    deallocate: UNEXPECTED,
    deallocateReply: UNEXPECTED,
    reclaim: (reclaim, frame) => void this.jobs.reclaim(reclaim, frame.requestId),
    reclaimReply: UNEXPECTED,
  } satisfies FrameTable;

  constructor(
    socket: Socket,
    private readonly node: NodeContext<ClientSession>,
    private readonly onEnd: (session: ClientSession) => void,
  ) {
    const { logger } = node;
    const peer = (this.peer = `${socket.remoteAddress}:${socket.remotePort}`);
    // Until the client proves the secret, only the handshake's own small frames are accepted.
    const channel = (this.channel = new FramedSocket(socket, {
      limits: HANDSHAKE_LIMITS,
      onFrame: (frame, attachment) => this.onFrame(frame, attachment),
      onClose: (error) => void this.shutdown(error),
    }));
    const nodeCpus = () => node.cpus;
    const release = () => node.release(this);
    const link: ReplyLink = {
      send: (frame) => channel.send(frame),
      drain: () => channel.drain(),
      sendFile: (computation, jobId, file) => this.outgoing.send(computation, jobId, file),
      requestShutdown: () => node.requestShutdown(this),
    };
    this.computations = new SessionComputations({
      channel,
      logger,
      registry: node.computations,
      link,
      owner: this,
      nodeCpus,
      claimFrom: (from) => node.claim(this, from),
      release,
    });
    const computations = this.computations;
    this.jobs = new JobLoop({ channel, computations, logger, nodeCpus });
    this.incoming = new IncomingFiles({ channel, computations, logger, peer, maxFileSize: node.maxFileSize });
    this.outgoing = new OutgoingFiles(channel, node.maxFileSize);
    this.liveness = new Liveness({
      heartbeatIntervalMs: node.heartbeatIntervalMs,
      logger,
      peer,
      socket,
      heartbeat: () => channel.send({ pulse: { busy: computations.runningJobs() } }),
      pulse: async () => {
        const availInfo = await measureAvailInfo(node.destPathPrefix);
        if (!this.closed) channel.send({ pulse: { busy: computations.runningJobs(), availInfo } });
      },
      onLinkDead: () => void this.shutdown(new Error('the link timed out')),
    });
    this.setup = new ComputationSetup({
      channel,
      computations,
      logger,
      peer,
      nodeName: node.name,
      destPathPrefix: node.destPathPrefix,
      maxFileSize: node.maxFileSize,
      maxOutputBytes: node.maxOutputBytes,
      nodeCpus,
      registry: node.computations,
      slots: node.slots,
      admit: (computeId, exclusive) => node.admit(this, computeId, exclusive),
      release,
      isClosed: () => this.closed,
      heartbeatSeconds: node.heartbeatIntervalMs / 1000,
      onReady: (setup) => {
        this.servedComputation = true;
        this.liveness.startPulses(setup.pulseInterval);
        node.changed();
      },
    });
    this.handshake = new Handshake({
      channel,
      name: node.name,
      secret: node.secret,
      logger,
      peer,
      heartbeatSeconds: node.heartbeatIntervalMs / 1000,
      zombieSeconds: node.zombieIntervalMs / 1000,
    });
  }

  /** Tells the client why (an Error frame, before its handshake: in plain) and hangs up. */
  refuse(error: Error): void {
    this.channel.destroy(error);
  }

  /** This client's computations and the jobs running now. */
  status(): { computations: number; running: number } {
    return { computations: this.computations.readyCount, running: this.computations.runningJobs() };
  }

  /** The node's CPUs changed (its owner, or service hours): resize the pools (the client is told its share by `tellShare`). */
  nodeCpusChanged(cpus: number): void {
    if (!this.authenticated || this.closed) return;
    this.computations.nodeCpusChanged(cpus);
  }

  /**
   * Tells the client how many of the node's CPUs are its own to fill now (NodeCpus), when that
   * changed: all the node offers while it is alone, its share while other computations run here.
   */
  tellShare(cpus: number): void {
    if (!this.authenticated || this.closed || cpus === this.toldCpus) return;
    this.toldCpus = cpus;
    this.channel.send({ nodeCpus: { cpus } });
  }

  /** Computations of this client set up here and running jobs. */
  get readyComputations(): number {
    return this.closed ? 0 : this.computations.readyCount;
  }

  /** Whether `kept` is a computation of this connection. */
  holds(kept: KeptComputation): boolean {
    return kept.holder === this.computations;
  }

  /** Whether this client has a computation here that holds the node (set up, or being set up). */
  get holdsComputations(): boolean {
    return !this.closed && this.computations.liveCount > 0;
  }

  /**
   * Ends the session. A lost link (`detach`, the default) detaches the client's computations:
   * their jobs go on and their replies are kept (on disk) for the client to take back. `close`
   * (the node's service hours ended) kills the jobs and forgets the computations. With
   * `nodeStopping`, an authenticated client is told first (an Error NODE_STOPPED naming no job,
   * before a graceful end), so that it gives the node up at once instead of reconnecting to it for
   * the zombie interval. Never rejects.
   */
  async shutdown(error?: Error, how: 'detach' | 'close' = 'detach', nodeStopping = false): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handshake.cancel();
    const lastHeard = this.liveness.lastHeardAt;
    this.liveness.stop();
    const kept = how === 'detach' ? this.computations.readyCount : 0;
    // Before authentication, anyone can make a connection fail: at debug level, a flood of them cannot flood the log.
    if (error || kept > 0) {
      const why = `client ${this.peer} disconnected${error ? `: ${error.message}` : ''}`;
      this.node.logger[this.authenticated ? 'info' : 'debug'](kept > 0 ? `${why}; its ${kept} computations are kept for it` : why);
    }
    if (nodeStopping && this.authenticated) {
      this.channel.end({ error: { code: ErrorCode.NODE_STOPPED, message: `node ${this.node.name} is stopping` } });
    } else {
      this.channel.destroy();
    }
    // Detached at once: replies that come meanwhile are saved for the client.
    const ending = how === 'detach' ? this.computations.detachAll(lastHeard) : this.computations.closeAll();
    this.outgoing.abort(new Error('the client went away'));
    await this.incoming
      .abort()
      .catch((failure: Error) => this.node.logger.warn(`removing partial files of ${this.peer}: ${failure.message}`));
    await ending;
    this.node.release(this);
    this.onEnd(this);
  }

  private reattach(request: dispy.Reattach, requestId: number): void {
    this.computations.reattach(request, requestId);
    if (this.computations.get(request.computeId)) this.servedComputation = true;
  }

  private onFrame(frame: Frame, attachment?: Buffer[]): void {
    this.liveness.heard();
    if (!this.authenticated) {
      if (this.handshake.receive(frame) === undefined) return;
      this.authenticated = true;
      this.channel.setLimits(SESSION_LIMITS);
      this.node.logger.info(`client ${frame.auth?.clientName || this.peer} (${this.peer}) authenticated`);
      this.liveness.startHeartbeat();
      this.toldCpus = this.node.cpus;
      this.node.authenticated(this);
      return;
    }
    if (dispatchFrame(this.handlers, frame, attachment) === UNEXPECTED) {
      this.channel.send({ requestId: frame.requestId, error: { code: ErrorCode.PROTOCOL, message: `unexpected ${frame.kind} frame` } });
    }
  }
}
