import type { Logger, MonitorJob, MonitorSnapshot, MonitorSource } from '@dispy/protocol/internal';
import { THROUGHPUT_BUCKET_MS } from '@dispy/protocol/internal';
import type { WebSocket } from 'ws';

/** Pushes to a browser are at least this far apart (at most 4 a second). */
export const PUSH_INTERVAL_MS = 250;
/** A browser whose socket holds more unsent bytes than this is skipped, and sent the whole state once it has caught up. */
const MAX_BUFFERED_BYTES = 1 << 20;

/** A cluster as the page names it. */
export interface ClusterState {
  id: string;
  snapshot: MonitorSnapshot;
}

/** What the server sends a browser: the whole state first (and after falling behind), then what changed. */
export type ServerMessage =
  | { type: 'state'; showJobArgs: boolean; clusters: ClusterState[]; nodeJobs?: NodeJobs }
  | { type: 'update'; clusters: ClusterState[]; removed: string[]; nodeJobs?: NodeJobs };

/** The running jobs of the node a browser shows. */
export interface NodeJobs {
  cluster: string;
  node: string;
  jobs: MonitorJob[];
}

interface Entry {
  id: string;
  source: MonitorSource;
  stop: () => void;
}

/** One browser's stream: what it shows, and whether it missed updates. */
interface Stream {
  socket: WebSocket;
  watching?: { cluster: string; node: string };
  behind: boolean;
}

/**
 * The clusters shown and the browsers watching them. Changes of a cluster mark it; while a
 * browser is connected, marked clusters are sent to every browser at most every
 * `PUSH_INTERVAL_MS`, each with the jobs of the node it shows.
 */
export class MonitorHub {
  private readonly clusters = new Map<string, Entry>();
  private readonly streams = new Set<Stream>();
  private readonly dirty = new Set<string>();
  private readonly removed = new Set<string>();
  private nextId = 1;
  private pushTimer?: NodeJS.Timeout;
  /** While browsers are connected: marks every cluster now and then, as the throughput line moves on with time. */
  private tickTimer?: NodeJS.Timeout;
  private lastPush = 0;

  constructor(
    private readonly showJobArgs: boolean,
    private readonly logger: Logger,
  ) {}

  /** Adds a cluster; the same source twice is kept once. Returns its id. */
  add(source: MonitorSource): string {
    for (const entry of this.clusters.values()) if (entry.source === source) return entry.id;
    const id = `c${this.nextId++}`;
    const stop = source.onChange(() => this.mark(id), { jobArgs: this.showJobArgs });
    this.clusters.set(id, { id, source, stop });
    this.mark(id);
    return id;
  }

  /** Removes a cluster; false when it was not shown. */
  remove(source: MonitorSource): boolean {
    for (const entry of this.clusters.values()) {
      if (entry.source !== source) continue;
      entry.stop();
      this.clusters.delete(entry.id);
      this.dirty.delete(entry.id);
      // Browsers connected later get the whole state: only those connected now need telling.
      if (this.streams.size > 0) this.removed.add(entry.id);
      this.schedule();
      return true;
    }
    return false;
  }

  source(id: string): MonitorSource | undefined {
    return this.clusters.get(id)?.source;
  }

  /** Every cluster now (for `GET /api/state`). */
  state(): ClusterState[] {
    return [...this.clusters.values()].flatMap((entry) => this.stateOf(entry));
  }

  /** A browser connected: it gets the whole state, then the changes. */
  attach(socket: WebSocket): void {
    const stream: Stream = { socket, behind: false };
    this.streams.add(stream);
    this.tickTimer ??= setInterval(() => this.markAll(), THROUGHPUT_BUCKET_MS).unref();
    socket.on('message', (data: Buffer, isBinary) => this.received(stream, isBinary ? undefined : data.toString('utf8')));
    socket.on('close', () => this.detach(stream));
    socket.on('error', (error) => {
      this.logger.debug(`a browser's WebSocket failed: ${error.message}`);
      this.detach(stream);
    });
    this.sendState(stream);
  }

  /** Stops every stream and listener. */
  close(): void {
    clearTimeout(this.pushTimer);
    clearInterval(this.tickTimer);
    this.pushTimer = this.tickTimer = undefined;
    for (const entry of this.clusters.values()) entry.stop();
    this.clusters.clear();
    for (const stream of this.streams) stream.socket.terminate();
    this.streams.clear();
  }

  private detach(stream: Stream): void {
    if (!this.streams.delete(stream)) return;
    if (this.streams.size > 0) return;
    clearInterval(this.tickTimer);
    this.tickTimer = undefined;
  }

  /** A browser says which node page it shows (`{"type":"watch","cluster":"c1","node":"host:port"}`), or none. */
  private received(stream: Stream, text: string | undefined): void {
    let message: unknown;
    try {
      message = text === undefined ? undefined : JSON.parse(text);
    } catch {
      message = undefined;
    }
    const watch = message as { type?: unknown; cluster?: unknown; node?: unknown } | undefined;
    if (watch?.type !== 'watch') {
      stream.socket.close(1003, 'unexpected message');
      return;
    }
    stream.watching =
      typeof watch.cluster === 'string' && typeof watch.node === 'string' ? { cluster: watch.cluster, node: watch.node } : undefined;
    // A browser that asks and does not read gets nothing more until it has caught up (then the whole state).
    if (stream.socket.bufferedAmount > MAX_BUFFERED_BYTES) {
      stream.behind = true;
      return;
    }
    this.send(stream, { type: 'update', clusters: [], removed: [], nodeJobs: this.nodeJobsOf(stream) });
  }

  private mark(id: string): void {
    this.dirty.add(id);
    this.schedule();
  }

  private markAll(): void {
    for (const id of this.clusters.keys()) this.dirty.add(id);
    this.schedule();
  }

  /** Plans the next push, no sooner than `PUSH_INTERVAL_MS` after the last one; none while no browser is connected. */
  private schedule(): void {
    if (this.pushTimer || this.streams.size === 0) return;
    const wait = Math.max(0, this.lastPush + PUSH_INTERVAL_MS - Date.now());
    this.pushTimer = setTimeout(() => this.push(), wait);
    this.pushTimer.unref();
  }

  private push(): void {
    this.pushTimer = undefined;
    this.lastPush = Date.now();
    const clusters = [...this.dirty].flatMap((id) => {
      const entry = this.clusters.get(id);
      return entry ? this.stateOf(entry) : [];
    });
    const removed = [...this.removed];
    this.dirty.clear();
    this.removed.clear();
    for (const stream of this.streams) {
      if (stream.socket.bufferedAmount > MAX_BUFFERED_BYTES) {
        stream.behind = true;
        continue;
      }
      if (stream.behind) this.sendState(stream);
      else this.send(stream, { type: 'update', clusters, removed, nodeJobs: this.nodeJobsOf(stream) });
    }
  }

  private sendState(stream: Stream): void {
    stream.behind = false;
    this.send(stream, { type: 'state', showJobArgs: this.showJobArgs, clusters: this.state(), nodeJobs: this.nodeJobsOf(stream) });
  }

  private send(stream: Stream, message: ServerMessage): void {
    if (stream.socket.readyState !== stream.socket.OPEN) return;
    stream.socket.send(JSON.stringify(message), (error) => {
      if (error) this.logger.debug(`a push to a browser failed: ${error.message}`);
    });
  }

  private stateOf(entry: Entry): ClusterState[] {
    try {
      return [{ id: entry.id, snapshot: entry.source.snapshot() }];
    } catch (error) {
      this.logger.error(`cluster ${entry.source.name} could not be read: ${(error as Error).message}`);
      return [];
    }
  }

  private nodeJobsOf(stream: Stream): NodeJobs | undefined {
    const watching = stream.watching;
    const source = watching && this.clusters.get(watching.cluster)?.source;
    if (!watching || !source) return undefined;
    try {
      const jobs = source.nodeJobs(watching.node);
      return { ...watching, jobs: this.showJobArgs ? jobs : withoutArgs(jobs) };
    } catch (error) {
      this.logger.error(`the jobs of node ${watching.node} could not be read: ${(error as Error).message}`);
      return undefined;
    }
  }
}

/**
 * Jobs as a monitor without `showJobArgs` shows them: a cluster keeps arguments while any of its
 * monitors asks for them, so each monitor strips them unless it asked too.
 */
export function withoutArgs(jobs: MonitorJob[]): MonitorJob[] {
  return jobs.map(({ args: _args, ...job }) => job);
}
