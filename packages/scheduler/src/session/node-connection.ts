import net from 'node:net';
import {
  AuthError,
  FramedSocket,
  PROTOCOL_VERSION,
  clientProof,
  macEquals,
  newNonce,
  nodeProof,
  type Attachment,
  type Frame,
  type FrameInit,
  type dispy,
} from '@dispy/protocol';

export interface NodeConnectionOptions {
  host: string;
  port: number;
  localAddress?: string;
  secret: string;
  clientName: string;
  /** Every frame after authentication that is not an answer to a pending request. */
  onFrame: (frame: Frame, attachment?: Buffer[]) => void;
  /** The connection is gone (after open() succeeded). */
  onClose: (error?: Error) => void;
}

const CONNECT_TIMEOUT_MS = 10_000;
const REPLY_TIMEOUT_MS = 60_000;
/** Setup may load data and receive large files first. */
const SETUP_TIMEOUT_MS = 10 * 60_000;

/**
 * The client's persistent connection to one node: mutual authentication, then setup, jobs and
 * replies multiplexed as frames. Acknowledgements of replies are batched per tick.
 */
export class NodeConnection {
  private channel?: FramedSocket;
  private opened = false;
  private readonly waiters = new Map<string, (frame: Frame) => void>();
  private pendingAcks: number[] = [];
  private closedError?: Error;

  constructor(private readonly options: NodeConnectionOptions) {}

  get socket(): net.Socket | undefined {
    return this.channel?.socket;
  }

  /** Connects and authenticates; rejects with AuthError when the node's secret differs. */
  async open(): Promise<void> {
    const { host, port, localAddress } = this.options;
    const socket = net.connect({ host, port, ...(localAddress ? { localAddress } : {}) });
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => socket.destroy(new Error(`node ${host}:${port} did not answer in time`)));
    const handshake = new Promise<void>((resolve, reject) => {
      let nonce: Buffer | undefined;
      this.channel = new FramedSocket(socket, {
        onFrame: (frame, attachment) => {
          if (this.opened) {
            this.dispatch(frame, attachment);
            return;
          }
          if (frame.kind === 'hello') {
            const hello = frame.hello as dispy.Hello;
            if (hello.version !== PROTOCOL_VERSION) {
              reject(new AuthError(`node ${host}:${port} speaks protocol ${hello.version}, this client ${PROTOCOL_VERSION}`));
              this.channel!.destroy();
              return;
            }
            nonce = newNonce();
            this.channel!.send({
              auth: { version: PROTOCOL_VERSION, nonce, mac: clientProof(this.options.secret, hello.nonce, nonce), clientName: this.options.clientName },
            });
            this.helloNonce = hello.nonce;
          } else if (frame.kind === 'authResult' && nonce) {
            const result = frame.authResult as dispy.AuthResult;
            if (!result.ok) {
              reject(new AuthError(`node ${host}:${port} refused this client: ${result.reason}`));
              this.channel!.destroy();
            } else if (!macEquals(nodeProof(this.options.secret, nonce, this.helloNonce!), result.mac)) {
              reject(new AuthError(`node ${host}:${port} could not prove the shared secret; not used`));
              this.channel!.destroy();
            } else {
              this.opened = true;
              socket.setTimeout(0);
              resolve();
            }
          } else if (frame.kind === 'error') {
            reject(new AuthError(`node ${host}:${port}: ${frame.error!.message}`));
          } else {
            reject(new AuthError(`node ${host}:${port} sent ${frame.kind} before authenticating`));
            this.channel!.destroy();
          }
        },
        onClose: (error) => {
          this.closedError = error ?? new Error(`connection to node ${host}:${port} closed`);
          for (const waiter of this.waiters.values()) waiter({ error: { message: this.closedError.message } } as Frame);
          this.waiters.clear();
          if (this.opened) this.options.onClose(error);
          else reject(this.closedError);
        },
      });
    });
    await handshake;
  }

  private helloNonce?: Uint8Array;

  /**
   * Sends a setup request and resolves with the node's answer. When the node asks for files
   * first (FileWant), `sendFiles` streams them, and the answer follows.
   */
  async setup(setup: dispy.ISetup, sendFiles: (want: dispy.FileWant) => Promise<void> = async () => {}): Promise<dispy.SetupReply> {
    const key = `setup:${setup.computeId}`;
    let frame = await this.request(key, { setup }, SETUP_TIMEOUT_MS);
    if (frame.kind === 'fileWant') {
      const want = frame.fileWant as dispy.FileWant;
      const answer = this.waitFor(key, SETUP_TIMEOUT_MS);
      await sendFiles(want);
      frame = await answer;
    }
    if (frame.kind !== 'setupReply') throw new Error(frame.error?.message ?? 'setup failed');
    return frame.setupReply as dispy.SetupReply;
  }

  /** Resolves when the node has the file of transfer `transferId` (rejects with its reason). */
  fileDone(transferId: number): Promise<void> {
    return this.waitFor(`file:${transferId}`).then((frame) => {
      const done = frame.fileDone as dispy.FileDone | undefined;
      if (!done?.ok) throw new Error(done?.error || frame.error?.message || 'the file was refused');
    });
  }

  /** Resolves when the socket can take more (for streaming files). */
  drain(): Promise<void> {
    return this.channel?.drain() ?? Promise.resolve();
  }

  /** Asks the node to use `cpus` CPUs for a computation; resolves with its answer. */
  setCpus(computeId: string, cpus: number): Promise<dispy.SetCpusReply> {
    return this.request(`cpus:${computeId}`, { setCpus: { computeId, cpus } }).then((frame) => {
      if (frame.kind !== 'setCpusReply') throw new Error(frame.error?.message ?? 'setting CPUs failed');
      return frame.setCpusReply as dispy.SetCpusReply;
    });
  }

  /** Asks the node to close a computation; resolves when it has (or the connection is gone). */
  async closeComputation(computeId: string, terminatePending: boolean): Promise<void> {
    if (this.closedError) return;
    await this.request(`close:${computeId}`, { close: { computeId, terminatePending } }).catch(() => undefined);
  }

  /** Queues a frame (and its attachment); false when the socket's buffer is full. */
  send(frame: FrameInit, attachment?: Attachment): boolean {
    return this.channel?.send(frame, attachment) ?? false;
  }

  /** Acknowledges a reply; acknowledgements leave together at the end of the tick. */
  ack(jobId: number): void {
    if (this.pendingAcks.length === 0) {
      setImmediate(() => {
        const jobIds = this.pendingAcks;
        this.pendingAcks = [];
        this.channel?.send({ jobAck: { jobIds } });
      });
    }
    this.pendingAcks.push(jobId);
  }

  /** Lets the process exit while the connection is idle (`false`), or keeps it alive. */
  setActive(active: boolean): void {
    if (active) this.channel?.socket.ref();
    else this.channel?.socket.unref();
  }

  /** Hangs up; with `error`, the connection's close reports it (a node presumed dead). */
  destroy(error?: Error): void {
    if (error) {
      this.channel?.destroy(error);
      return;
    }
    this.channel?.end();
    this.channel?.socket.destroy();
  }

  private request(key: string, frame: FrameInit, timeoutMs = REPLY_TIMEOUT_MS): Promise<Frame> {
    const answer = this.waitFor(key, timeoutMs);
    this.channel?.send(frame);
    return answer;
  }

  /** Resolves with the next frame answering `key`, or rejects if none comes in time. */
  private waitFor(key: string, timeoutMs = REPLY_TIMEOUT_MS): Promise<Frame> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        reject(new Error(`node ${this.options.host}:${this.options.port} did not answer ${key.split(':')[0]} in time`));
      }, timeoutMs);
      timer.unref();
      this.waiters.set(key, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
    });
  }

  private dispatch(frame: Frame, attachment?: Buffer[]): void {
    const key =
      frame.kind === 'setupReply' ? `setup:${frame.setupReply!.computeId}`
      : frame.kind === 'closeReply' ? `close:${frame.closeReply!.computeId}`
      : frame.kind === 'setCpusReply' ? `cpus:${frame.setCpusReply!.computeId}`
      : frame.kind === 'fileWant' ? `setup:${frame.fileWant!.computeId}`
      : frame.kind === 'fileDone' ? `file:${frame.fileDone!.transferId}`
      : undefined;
    const waiter = key ? this.waiters.get(key) : undefined;
    if (waiter && key) {
      this.waiters.delete(key);
      waiter(frame);
      return;
    }
    this.options.onFrame(frame, attachment);
  }
}
