import net from 'node:net';
import {
  MAX_REPEATED_ENTRIES,
  AuthError,
  CLIENT_SESSION_LIMITS,
  DispyError,
  ErrorCode,
  FramedSocket,
  PROTOCOL_VERSION,
  connectTls,
  describeTlsError,
  describePskError,
  clientProof,
  macEquals,
  newNonce,
  nodeProof,
  pskClientTls,
  type Attachment,
  type ClientTls,
  type Frame,
  type FrameInit,
  type FrameKind,
  type dispy,
} from '@dispy/protocol';
import { PendingRequests } from './pending-requests.js';
import { LinkLiveness, SILENT_HEARTBEATS } from './link-liveness.js';

export interface NodeConnectionOptions {
  host: string;
  port: number;
  localAddress?: string;
  secret: string;
  /**
   * TLS toward the node with certificates. Without it, a connection with a secret is TLS with the
   * secret's pre-shared key, and one without a secret plain.
   */
  tls?: ClientTls;
  clientName: string;
  /** Every frame after authentication that answers no request of this connection. */
  onFrame: (frame: Frame, attachment?: Buffer[]) => void;
  /** The connection is gone (after open() succeeded); `error` says why (undefined: it was closed cleanly). */
  onClose: (error?: Error) => void;
  /** @internal Makes the socket (tests pass one end of an in-memory pair; frames on it are plain); default `net.connect`. */
  connect?: () => net.Socket;
  /** What the peer is called in errors (default `node`; a SharedJobCluster's link says `dispyscheduler`). */
  peerKind?: string;
}

const CONNECT_TIMEOUT_MS = 10_000;
/** TCP keepalive probes start after this much idle time (the heartbeat notices a dead link first; this guards the kernel's side). */
const KEEPALIVE_DELAY_MS = 15_000;
/** How long a node has to answer setCpus, close and reattach. */
export const REPLY_TIMEOUT_MS = 60_000;
/** Setup may load data and receive large files first; so may a file's FileDone. */
export const SETUP_TIMEOUT_MS = 10 * 60_000;

/**
 * The client's persistent connection to one node: mutual authentication, then setup, jobs and
 * replies multiplexed as frames. Each request (Setup, SetCpus, Close) carries a request id fresh
 * for this connection, and the node's answers name it (`Frame.request_id`), so concurrent
 * requests of one kind never take each other's answers. A request ends with its answer, or with a
 * DispyError: the node's Error frame refusing it, or `ErrorCode.NO_ANSWER` when no answer comes
 * in time or the connection goes. File transfers are matched by their transfer id the same way.
 * Acknowledgements of replies are batched per tick.
 *
 * Once authenticated, the connection keeps itself alive as the node's AuthResult says: a Pulse
 * whenever nothing was sent for its heartbeat interval, and the link presumed dead (destroyed, and
 * reported to `onClose` with the reason) when nothing came from the node for four intervals. The
 * socket also has TCP keepalive.
 */
export class NodeConnection {
  private channel?: FramedSocket;
  private opened = false;
  private readonly requests: PendingRequests;
  private readonly transfers: PendingRequests;
  /** Job ids to acknowledge at the end of the tick, by computation. */
  private pendingAcks = new Map<string, number[]>();
  private liveness?: LinkLiveness;
  /** Why this side cut the link (a silent node), reported by onClose. */
  private cutBecause?: Error;
  /** The node's heartbeat interval in seconds, as its AuthResult said (0: it did not say). */
  heartbeatSeconds = 0;
  /** How long the node keeps a computation whose client is gone, in seconds, as its AuthResult said (0: not at all). */
  zombieSeconds = 0;

  private get peerKind(): string {
    return this.options.peerKind ?? 'node';
  }

  constructor(private readonly options: NodeConnectionOptions) {
    this.requests = new PendingRequests(`node ${options.host}:${options.port}`);
    this.transfers = new PendingRequests(`node ${options.host}:${options.port}`);
  }

  get socket(): net.Socket | undefined {
    return this.channel?.socket;
  }

  /** Connects and authenticates; rejects with AuthError when the node's secret differs. */
  async open(): Promise<void> {
    const { host, port, secret, clientName } = this.options;
    const tls = this.options.connect ? undefined : (this.options.tls ?? (secret !== '' ? pskClientTls(secret) : undefined));
    // The local address (the client's first ipAddr) serves only peers of its own family: an IPv6
    // node found from another ipAddr is reached from any local address.
    const given = this.options.localAddress;
    const localAddress = given && net.isIP(host) !== 0 && net.isIP(given) !== net.isIP(host) ? undefined : given;
    const socket =
      this.options.connect?.() ??
      (tls
        ? await connectTls({ host, port, localAddress, tls, timeoutMs: CONNECT_TIMEOUT_MS, peerKind: this.peerKind })
        : net.connect({ host, port, ...(localAddress ? { localAddress } : {}) }));
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    socket.setTimeout(CONNECT_TIMEOUT_MS, () =>
      socket.destroy(new DispyError(ErrorCode.NO_ANSWER, `${this.peerKind} ${host}:${port} did not answer in time`)),
    );
    await new Promise<void>((resolve, reject) => {
      let helloNonce: Uint8Array | undefined;
      let nonce: Buffer | undefined;
      const refuse = (error: AuthError): void => {
        reject(error);
        this.channel!.destroy();
      };
      this.channel = new FramedSocket(socket, {
        // A JobReply too large ends its job, Terminated, not the connection (CLIENT_SESSION_LIMITS).
        limits: CLIENT_SESSION_LIMITS,
        onFrame: (frame, attachment) => {
          if (this.opened) {
            this.route(frame, attachment);
          } else if (frame.kind === 'hello') {
            const hello = frame.hello as dispy.Hello;
            if (hello.version !== PROTOCOL_VERSION) {
              refuse(new AuthError(`${this.peerKind} ${host}:${port} speaks protocol ${hello.version}, this client ${PROTOCOL_VERSION}`));
              return;
            }
            helloNonce = hello.nonce;
            nonce = newNonce();
            this.channel!.send({ auth: { version: PROTOCOL_VERSION, nonce, mac: clientProof(secret, hello.nonce, nonce), clientName } });
          } else if (frame.kind === 'authResult' && nonce && helloNonce) {
            const result = frame.authResult as dispy.AuthResult;
            if (!result.ok) {
              refuse(new AuthError(`${this.peerKind} ${host}:${port} refused this client: ${result.reason}`));
            } else if (!macEquals(nodeProof(secret, nonce, helloNonce), result.mac)) {
              refuse(new AuthError(`${this.peerKind} ${host}:${port} could not prove the shared secret; not used`));
            } else {
              this.opened = true;
              socket.setTimeout(0);
              this.heartbeatSeconds = result.heartbeatInterval > 0 ? result.heartbeatInterval : 0;
              this.zombieSeconds = result.zombieInterval > 0 ? result.zombieInterval : 0;
              this.keepAlive(socket);
              resolve();
            }
          } else if (frame.kind === 'error') {
            refuse(new AuthError(`${this.peerKind} ${host}:${port}: ${frame.error!.message}`));
          } else {
            refuse(new AuthError(`${this.peerKind} ${host}:${port} sent ${frame.kind} before authenticating`));
          }
        },
        onClose: (closedBy) => {
          this.liveness?.stop();
          const error = this.cutBecause ?? closedBy;
          this.requests.close(error);
          this.transfers.close(error);
          if (this.opened) this.options.onClose(error);
          else if (error && tls?.psk) reject(describePskError(error, host, port, this.peerKind));
          else if (error && tls) reject(describeTlsError(error, host, port, this.peerKind, tls.names));
          else if (tls && !tls.psk && !helloNonce)
            // A node that refuses a client's certificate may hang up without an alert that reaches us.
            reject(
              new AuthError(
                `${this.peerKind} ${host}:${port} closed the TLS connection before its Hello: it may have refused this client's certificate (--require-client-cert); see its log`,
              ),
            );
          else reject(error ?? new DispyError(ErrorCode.NO_ANSWER, `connection to ${this.peerKind} ${host}:${port} closed`));
        },
      });
    });
  }

  /**
   * Sends a setup request and resolves with the node's answer (which says whether setup
   * succeeded). When the node asks for files first (FileWant), `sendFiles` streams them and the
   * answer follows; if sending fails, the setup rejects with that error.
   * @throws DispyError (`NO_ANSWER`) when the node does not answer in 10 minutes or goes away.
   */
  async setup(setup: dispy.ISetup, sendFiles: (want: dispy.FileWant) => Promise<void> = async () => {}): Promise<dispy.SetupReply> {
    let id = 0;
    const request = this.requests.open(`setup of ${setup.name ?? setup.computeId}`, SETUP_TIMEOUT_MS, (frame) => {
      if (frame.kind === 'fileWant') {
        sendFiles(frame.fileWant as dispy.FileWant).catch((error: Error) => this.requests.fail(id, error));
        return 'more';
      }
      if (frame.kind !== 'setupReply')
        throw new DispyError(
          ErrorCode.PROTOCOL,
          `${this.peerKind} ${this.options.host}:${this.options.port} answered setup with ${frame.kind}`,
        );
      return 'done';
    });
    id = request.id;
    this.send({ setup, requestId: id });
    return (await request.answer).setupReply as dispy.SetupReply;
  }

  /**
   * Starts a file transfer: its id (for its FileChunk frames), and `done`, which resolves when the
   * node has the file in place and rejects with its reason (or NO_ANSWER); `abandon` ends the
   * wait when this side gives the transfer up.
   */
  transfer(name: string): { transferId: number; done: Promise<void>; abandon: (error: Error) => void } {
    const { id, answer } = this.transfers.open(`file ${name}`, SETUP_TIMEOUT_MS, (frame) => {
      const done = frame.fileDone as dispy.FileDone;
      if (!done.ok)
        throw new DispyError(
          knownCode(done.code) ?? ErrorCode.FILE,
          `${this.peerKind} ${this.options.host}:${this.options.port} refused file ${name}: ${done.error}`,
        );
      return 'done';
    });
    const done = answer.then(() => undefined);
    // The transfer's owner awaits it after streaming; until then a failure must not go unhandled.
    done.catch(() => undefined);
    return { transferId: id, done, abandon: (error) => this.transfers.fail(id, error) };
  }

  /** Resolves when the socket can take more (for streaming files). */
  drain(): Promise<void> {
    return this.channel?.drain() ?? Promise.resolve();
  }

  /** Whether the connection has closed (or was never opened). */
  get isClosed(): boolean {
    return this.channel?.isClosed ?? true;
  }

  /** Bytes queued on the socket and not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.channel?.bufferedBytes ?? 0;
  }

  /**
   * Asks the node to use `cpus` CPUs for a computation; resolves with its answer.
   * @throws DispyError when the node refuses, does not answer in 60 s, or goes away.
   */
  async setCpus(computeId: string, cpus: number): Promise<dispy.SetCpusReply> {
    const { id, answer } = this.requests.open('setCpus', REPLY_TIMEOUT_MS, (frame) => {
      if (frame.kind !== 'setCpusReply')
        throw new DispyError(
          ErrorCode.PROTOCOL,
          `${this.peerKind} ${this.options.host}:${this.options.port} answered setCpus with ${frame.kind}`,
        );
      return 'done';
    });
    this.send({ setCpus: { computeId, cpus }, requestId: id });
    return (await answer).setCpusReply as dispy.SetCpusReply;
  }

  /**
   * Asks the node to give back jobs of `computeId` that no worker has started; resolves with
   * those it dropped (they will never run there).
   * @throws DispyError when the node refuses, does not answer in time, or goes away.
   */
  async reclaim(computeId: string, jobIds: readonly number[]): Promise<number[]> {
    const { id, answer } = this.requests.open('reclaim', REPLY_TIMEOUT_MS, (frame) => {
      if (frame.kind !== 'reclaimReply')
        throw new DispyError(
          ErrorCode.PROTOCOL,
          `${this.peerKind} ${this.options.host}:${this.options.port} answered reclaim with ${frame.kind}`,
        );
      return 'done';
    });
    this.send({ reclaim: { computeId, jobIds: [...jobIds] }, requestId: id });
    return ((await answer).reclaimReply?.jobIds ?? []).map(Number);
  }

  /**
   * Sends a request (`frame`, which gets its request id) and resolves with the answer of kind
   * `kind`; FileWant frames that come first go to `sendFiles` (as for a setup). For the requests
   * of a SharedJobCluster to dispyscheduler (Allocate, Deallocate, Close or SetCpus naming a node).
   * @throws DispyError when the peer refuses (an Error frame), answers with another kind, does not
   *   answer in `timeoutMs` (default 60 s), or goes away.
   */
  async request<K extends FrameKind>(
    what: string,
    frame: FrameInit,
    kind: K,
    options: { timeoutMs?: number; sendFiles?: (want: dispy.FileWant) => Promise<void> } = {},
  ): Promise<NonNullable<Frame[K]>> {
    let id = 0;
    const request = this.requests.open(what, options.timeoutMs ?? REPLY_TIMEOUT_MS, (answer) => {
      if (answer.kind === 'fileWant' && options.sendFiles) {
        options.sendFiles(answer.fileWant as dispy.FileWant).catch((error: Error) => this.requests.fail(id, error));
        return 'more';
      }
      if (answer.kind !== kind)
        throw new DispyError(
          ErrorCode.PROTOCOL,
          `${this.peerKind} ${this.options.host}:${this.options.port} answered ${what} with ${answer.kind}`,
        );
      return 'done';
    });
    id = request.id;
    this.send({ ...frame, requestId: id });
    return (await request.answer)[kind] as NonNullable<Frame[K]>;
  }

  /**
   * Asks the node to close a computation; resolves when it has.
   * @throws DispyError when the node does not answer in 60 s or goes away.
   */
  async closeComputation(computeId: string, terminatePending: boolean): Promise<void> {
    const { id, answer } = this.requests.open('close', REPLY_TIMEOUT_MS);
    this.send({ close: { computeId, terminatePending }, requestId: id });
    await answer;
  }

  /**
   * Takes back a computation set up on an earlier connection to this node; resolves with the
   * node's answer, after which the node sends again the replies it kept (`savedReplies` of them).
   * @throws DispyError when the node refuses, does not answer in 60 s, or goes away.
   */
  async reattach(computeId: string): Promise<dispy.ReattachReply> {
    const { id, answer } = this.requests.open(`reattach of ${computeId}`, REPLY_TIMEOUT_MS, (frame) => {
      if (frame.kind !== 'reattachReply')
        throw new DispyError(
          ErrorCode.PROTOCOL,
          `${this.peerKind} ${this.options.host}:${this.options.port} answered reattach with ${frame.kind}`,
        );
      return 'done';
    });
    this.send({ reattach: { computeId }, requestId: id });
    return (await answer).reattachReply as dispy.ReattachReply;
  }

  /** Queues a frame (and its attachment); false when the socket's buffer is full or it is closed. */
  send(frame: FrameInit, attachment?: Attachment): boolean {
    this.liveness?.sent();
    return this.channel?.send(frame, attachment) ?? false;
  }

  /** Acknowledges a reply of a computation; acknowledgements leave together at the end of the tick. */
  ack(computeId: string, jobId: number): void {
    if (this.pendingAcks.size === 0) {
      setImmediate(() => {
        const acks = this.pendingAcks;
        this.pendingAcks = new Map();
        for (const [ackedId, jobIds] of acks) {
          // A node refuses a JobAck of more entries than MAX_REPEATED_ENTRIES: split a large batch.
          for (let from = 0; from < jobIds.length; from += MAX_REPEATED_ENTRIES) {
            this.send({ jobAck: { computeId: ackedId, jobIds: jobIds.slice(from, from + MAX_REPEATED_ENTRIES) } });
          }
        }
      });
    }
    let jobIds = this.pendingAcks.get(computeId);
    if (!jobIds) this.pendingAcks.set(computeId, (jobIds = []));
    jobIds.push(jobId);
  }

  /** Lets the process exit while the connection is idle (`false`), or keeps it alive. */
  setActive(active: boolean): void {
    if (active) this.channel?.socket.ref();
    else this.channel?.socket.unref();
  }

  /** Hangs up; with `error`, the connection's close reports it (a node presumed dead). */
  destroy(error?: Error): void {
    this.liveness?.stop();
    if (error) {
      this.channel?.destroy(error);
      return;
    }
    this.channel?.end();
    this.channel?.destroy();
  }

  /** Starts the heartbeat and the watch for a silent node (see the class). */
  private keepAlive(socket: net.Socket): void {
    const { host, port } = this.options;
    this.liveness = new LinkLiveness({
      heartbeatSeconds: this.heartbeatSeconds,
      pulse: () => this.send({ pulse: {} }),
      onSilent: (seconds) => {
        this.cutBecause = new DispyError(
          ErrorCode.NO_ANSWER,
          `${this.peerKind} ${host}:${port} sent nothing for ${Math.round(seconds)} s (${SILENT_HEARTBEATS} heartbeats); link presumed dead`,
        );
        cutNow(socket, this.channel!, this.cutBecause);
      },
    });
    // Any bytes count as a sign of life, also those of a large frame still arriving.
    socket.on('data', () => this.liveness?.heard());
  }

  /** Answers go to their request (by request id) or transfer (by transfer id); the rest to onFrame. */
  private route(frame: Frame, attachment?: Buffer[]): void {
    if (frame.requestId !== 0 && this.requests.answer(frame)) return;
    if (frame.kind === 'fileDone' && this.transfers.answerTo(Number(frame.fileDone!.transferId), frame)) return;
    this.options.onFrame(frame, attachment);
  }
}

/**
 * Cuts a link presumed dead with a reset where the socket allows it (plain TCP), so that frames
 * still queued in the kernel (a Job) are dropped rather than delivered late on a connection this
 * side has given up: a job it sends again elsewhere must not also arrive here.
 */
function cutNow(socket: net.Socket, channel: FramedSocket, why: Error): void {
  try {
    if (typeof socket.resetAndDestroy === 'function') {
      socket.resetAndDestroy();
      return;
    }
  } catch {
    // A TLS socket has no TCP handle of its own to reset (ERR_INVALID_HANDLE_TYPE).
  }
  channel.destroy(why);
}

/** An error code from the wire, if it is one of ours. */
function knownCode(code: string | null | undefined): ErrorCode | undefined {
  return (Object.values(ErrorCode) as string[]).includes(code ?? '') ? (code as ErrorCode) : undefined;
}
