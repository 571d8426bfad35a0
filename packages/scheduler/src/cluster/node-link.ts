import type net from 'node:net';
import {
  DispyError,
  ErrorCode,
  FileReceiver,
  fileSha256,
  sendFileChunks,
  type ClientTls,
  type Frame,
  type FrameSink,
  type dispy,
} from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import { NodeConnection } from '../session/node-connection.js';
import { ReplyCount } from './reply-count.js';
import type { LocalFile, NodeInfo } from './types.js';

/** How files sent by jobs (dispySendFile) are received: where, how much, and from whom. */
export interface JobFilesConfig {
  /** The directory they land in, at their relative paths (confined to it by real path). */
  readonly dir: string;
  /** Largest file, in bytes (0: no limit). */
  readonly maxFileSize: number;
  /** Most bytes of files per job (0: no limit). */
  readonly maxJobSize: number;
  /** Throws to refuse a transfer (its first chunk): a file for no job of ours running on that node. */
  accept(link: NodeLink, chunk: dispy.FileChunk): void;
  /** Whether an existing file may be replaced (only one an earlier job sent). */
  mayReplace(target: string): boolean;
  /** A file took its name. */
  placed(target: string): void;
  readonly logger: Logger;
  /**
   * Takes the files of jobs from a node instead of writing them here (dispyscheduler relays them
   * to each job's client); default: a FileReceiver into `dir`.
   */
  relay?(link: NodeLink): ChunkSink;
}

/** What takes the file chunks a node's jobs send: a FileReceiver, or dispyscheduler's relay. */
export interface ChunkSink {
  receive(chunk: dispy.FileChunk, attachment?: Buffer[]): void;
  /** The connection is gone: transfers in progress are abandoned. */
  abort(): Promise<void>;
  /** A job of the node ended (its files no longer count against the per-job limit). */
  jobEnded(computeId: string, jobId: number): void;
}

/** What a NodeLink needs to open (and reopen) its connection. */
export interface NodeLinkOptions {
  host: string;
  port: number;
  name: string;
  totalCpus: number;
  platform: string;
  localAddress?: string;
  secret: string;
  tls?: ClientTls;
  clientName: string;
  onFrame: (link: NodeLink, frame: Frame, attachment?: Buffer[]) => void;
  /** The current connection closed (not after `close()`); `error` says why (undefined: the node hung up cleanly). */
  onClose: (link: NodeLink, error?: Error) => void;
  /** @internal Makes the socket (tests); default `net.connect`. */
  connect?: () => net.Socket;
  /** What the peer is called in errors (default `node`). */
  peerKind?: string;
}

/**
 * A node the scheduler is connected to: what it knows of it, and its connection. The link
 * outlives its connections: when one is lost, `reconnect()` opens the next, and jobs, files and
 * computations stay with the link.
 */
export class NodeLink {
  readonly info: NodeInfo;
  /** Computations set up there. */
  readonly computeIds = new Set<string>();
  /**
   * CPUs the node lets this client fill now (NodeCpus): fewer while other clients' computations
   * have jobs there, or while it offers fewer (0 outside its service hours: no new jobs).
   */
  nodeCpus = Infinity;
  /** The node's pulses are watched (NodePool.watchPulses), once for all its computations. */
  pulsesWatched = false;
  /**
   * `up`: connected; `down`: its connection was lost and a new one is being opened (the node's
   * jobs are still counted as running there); `closed`: hung up on, or given up.
   */
  state: 'up' | 'down' | 'closed' = 'up';
  /** The node said it is stopping (an Error NODE_STOPPED naming no job): its connection's close is its end. */
  stopping = false;
  private current: NodeConnection;
  /** Final replies of a computation seen since its Reattach went out (see `countReplies`). */
  private readonly replyCounts = new Map<string, ReplyCount>();

  constructor(private readonly options: NodeLinkOptions) {
    this.info = {
      key: `${options.host}:${options.port}`,
      host: options.host,
      port: options.port,
      name: options.name,
      cpus: 0,
      totalCpus: options.totalCpus,
      lastHeard: Date.now(),
      platform: options.platform,
      tx: 0,
      rx: 0,
    };
    this.current = this.newConnection();
  }

  /** The connection now (a new one after each reconnect). */
  get connection(): NodeConnection {
    return this.current;
  }

  /** Seconds the node keeps our computations and their replies once the link is gone (0: it does not). */
  get zombieSeconds(): number {
    return this.current.zombieSeconds;
  }

  /**
   * Opens a new connection to the node and authenticates; it becomes `connection` once open.
   * Rejects (the new connection closed) when that fails or the link was closed meanwhile.
   */
  async reconnect(): Promise<void> {
    const next = this.newConnection();
    this.attempt = next;
    try {
      await next.open();
    } catch (error) {
      next.destroy();
      throw error;
    } finally {
      this.attempt = undefined;
    }
    if (this.state === 'closed') {
      next.destroy();
      throw new DispyError(ErrorCode.CLOSED, `link to node ${this.key} was closed while it reconnected`);
    }
    this.current = next;
    this.info.lastHeard = Date.now();
  }

  /** A connection being opened by `reconnect()`. */
  private attempt?: NodeConnection;

  /** Hangs up for good: the connection, and a reconnection in progress. */
  close(): void {
    this.state = 'closed';
    this.attempt?.destroy();
    this.current.destroy();
    for (const count of this.replyCounts.values()) count.fail(new DispyError(ErrorCode.CLOSED, `link to node ${this.key} closed`));
  }

  /**
   * Starts counting the final replies of a computation (a Reattach is going out): `until(held,
   * saved)` resolves once `saved` replies of jobs not in `held` have come, or rejects after
   * `timeoutMs` (the node did not resend what it said it kept) or when the link closes.
   */
  countReplies(computeId: string, timeoutMs: number): { until(held: ReadonlySet<number>, saved: number): Promise<void>; stop(): void } {
    const count = new ReplyCount(`node ${this.key}`, timeoutMs);
    this.replyCounts.set(computeId, count);
    const stop = (): void => {
      count.stop();
      if (this.replyCounts.get(computeId) === count) this.replyCounts.delete(computeId);
    };
    return {
      until: async (held, saved) => {
        try {
          await count.until(held, saved);
        } finally {
          stop();
        }
      },
      stop,
    };
  }

  /** A final reply of a job of `computeId` arrived (counted while that computation is being reattached). */
  replyArrived(computeId: string, jobId: number): void {
    this.replyCounts.get(computeId)?.add(jobId);
  }

  private newConnection(): NodeConnection {
    const { options } = this;
    const connection: NodeConnection = new NodeConnection({
      host: options.host,
      port: options.port,
      localAddress: options.localAddress,
      secret: options.secret,
      tls: options.tls,
      clientName: options.clientName,
      onFrame: (frame, attachment) => {
        this.info.lastHeard = Date.now();
        options.onFrame(this, frame, attachment);
      },
      onClose: (error) => {
        if (connection !== this.current) return;
        // Transfers of files from jobs on that connection will not go on: their partial files go.
        this.receiver?.abort().catch(() => undefined);
        // A computation being taken back waits for no more replies on it.
        const why = error ?? new DispyError(ErrorCode.NO_ANSWER, `node ${this.key} closed the connection`);
        for (const count of this.replyCounts.values()) count.fail(why);
        if (this.state !== 'closed') options.onClose(this, error);
      },
      connect: options.connect,
      peerKind: options.peerKind,
    });
    return connection;
  }

  get key(): string {
    return this.info.key;
  }

  private receiver?: ChunkSink;

  /**
   * Answers a FileWant: sends the files the node lacks, and of those it has, sends the ones that
   * differ from ours (by sha256) and confirms the others (FileKept).
   */
  async sendWanted(computeId: string, files: LocalFile[], want: dispy.FileWant): Promise<void> {
    const toSend = files.filter((file) => want.names.includes(file.name));
    for (const theirs of want.have) {
      const ours = files.find((file) => file.name === theirs.name);
      if (!ours) continue;
      ours.sha256 ??= await fileSha256(ours.path);
      if (Buffer.from(ours.sha256).equals(Buffer.from(theirs.sha256 ?? [])))
        this.connection.send({ fileKept: { computeId, name: ours.name } });
      else toSend.push(ours);
    }
    await this.sendFiles(computeId, toSend);
  }

  /** Streams files to the node and waits until each is in place there. */
  async sendFiles(computeId: string, files: LocalFile[], jobId = 0): Promise<void> {
    for (const file of files) await (await this.streamFile(computeId, file, jobId)).arrived;
  }

  /**
   * Streams one file to the node; resolves, once its last chunk is queued, with `arrived`, which
   * settles when the node has the file in place (FileDone). When reading
   * it fails midway, the node is told (a last chunk it cannot accept ends the transfer and removes
   * its partial file), and this rejects.
   */
  async streamFile(computeId: string, file: LocalFile, jobId = 0, nodeKey?: string): Promise<{ arrived: Promise<void> }> {
    const { transferId, done, abandon } = this.connection.transfer(file.name);
    let started = false;
    const connection = this.connection;
    const sink: FrameSink = {
      send: (frame, attachment) => {
        started = true;
        return this.connection.send(frame, attachment);
      },
      drain: () => this.connection.drain(),
      get bufferedBytes() {
        return connection.bufferedBytes;
      },
    };
    try {
      await sendFileChunks(sink, { transferId, file: file.path, name: file.name, computeId, jobId, sha256: file.sha256, nodeKey });
    } catch (error) {
      // An offset past anything sent makes the node fail the transfer and remove its partial file.
      if (started)
        this.connection.send({
          fileChunk: { transferId, path: file.name, offset: Number.MAX_SAFE_INTEGER, last: true, computeId, jobId, nodeKey },
        });
      abandon(error as Error);
      throw error;
    }
    return { arrived: done };
  }

  /**
   * Receives files the node's jobs send (dispySendFile) into `config.dir`, at their relative paths
   * (never outside it, never through a symbolic link), only for jobs of ours running on this node,
   * within the size limits, and answers each transfer with FileDone; a refusal is logged once.
   */
  files(config: JobFilesConfig): ChunkSink {
    this.receiver ??= config.relay?.(this) ?? this.fileReceiver(config);
    return this.receiver;
  }

  private fileReceiver(config: JobFilesConfig): FileReceiver {
    return new FileReceiver({
      rootFor: () => config.dir,
      maxFileSize: config.maxFileSize,
      maxJobSize: config.maxJobSize,
      accept: (chunk) => config.accept(this, chunk),
      mayReplace: (target) => config.mayReplace(target),
      pause: () => this.connection.socket?.pause(),
      resume: () => this.connection.socket?.resume(),
      onDone: (transferId, result, about) => {
        if (result instanceof Error) {
          config.logger.warn(
            `node ${this.info.name} (${this.key}): file ${JSON.stringify(about.name)} of job ${about.jobId} refused: ${result.message}`,
          );
        } else {
          config.placed(result.path);
        }
        this.connection.send({
          fileDone: result instanceof Error ? { transferId, ok: false, error: result.message } : { transferId, ok: true },
        });
      },
    });
  }

  /** A job of this node ended: its files no longer count against the per-job limit. */
  jobEnded(computeId: string, jobId: number): void {
    this.receiver?.jobEnded(computeId, jobId);
  }

  /** Refreshes the byte counters from the socket. */
  countTraffic(): void {
    const socket = this.connection.socket;
    if (!socket) return;
    this.info.tx = socket.bytesWritten;
    this.info.rx = socket.bytesRead;
  }
}
