import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DispyError, ErrorCode } from '@dispy/protocol';
import {
  RECOVER_FILE_FORMAT,
  RECOVER_FILE_VERSION,
  defaultRecoverFileName,
  type JobRecord,
  type JobState,
  type NodeRecord,
  type RecoverFileHeader,
  type RecoverFileTls,
  type RecoverRecord,
} from './recover-file-format.js';

/** How often buffered records reach the file (ms): the most a crash can lose. */
export const RECOVER_FLUSH_MS = 50;
/** Buffered records that make a write at once, without waiting for the timer. */
export const RECOVER_FLUSH_RECORDS = 1000;

export interface RecoverFileWriterOptions {
  /** Default RECOVER_FLUSH_MS. */
  flushMs?: number;
  /** Default RECOVER_FLUSH_RECORDS. */
  flushRecords?: number;
  /** A write failed: the writer stops (later records could not be read after a hole), once. */
  onError?: (error: DispyError) => void;
  /**
   * When the process exits with the file still open and no job pending (a program that ended
   * without `close()`), delete the file: nothing in it is needed. With jobs pending it is kept.
   */
  removeOnExit?: boolean;
}

/** What a new file's header says of its cluster. */
export interface RecoverFileInit {
  computeId: string;
  name: string;
  tls?: RecoverFileTls;
}

/** A node as the writer hears of it. */
export interface RecoverNode {
  host: string;
  port: number;
  name: string;
}

// Writers still open: their buffered records are written if the process exits (process.exit).
const openWriters = new Set<RecoverFileWriter>();
let exitHooked = false;

/**
 * Appends records to a recover file (format in recover-file-format.ts). Records are buffered and
 * written together, at most every `flushMs` or when `flushRecords` are waiting, with one
 * synchronous write: appends in order, so a crash leaves whole records and at most one cut at
 * the end. It keeps which jobs are on nodes (`pending`), so its owner knows whether the file is
 * still needed when it closes.
 */
export class RecoverFileWriter {
  private fd?: number;
  private buffered: string[] = [];
  private timer?: NodeJS.Timeout;
  private readonly nodes = new Map<string, number>();
  private readonly running = new Set<number>();
  private readonly flushMs: number;
  private readonly flushRecords: number;

  private constructor(
    /** The file's path. */
    readonly path: string,
    fd: number,
    private readonly options: RecoverFileWriterOptions,
    knownNodes: readonly NodeRecord[] = [],
  ) {
    this.fd = fd;
    this.flushMs = options.flushMs ?? RECOVER_FLUSH_MS;
    this.flushRecords = options.flushRecords ?? RECOVER_FLUSH_RECORDS;
    for (const node of knownNodes) this.nodes.set(`${node.host}:${node.port}`, node.node);
    openWriters.add(this);
    if (!exitHooked) {
      exitHooked = true;
      process.on('exit', () => {
        for (const writer of openWriters) {
          if (writer.options.removeOnExit && writer.pending === 0) writer.close({ remove: true });
          else writer.flush();
        }
      });
    }
  }

  /**
   * Creates a new recover file and writes its header at once. `file` names it; without it, the
   * file is `_dispy_YYYYMMDDHHMMSS` (local time) in `dir` (default: the working directory), with
   * `_2`, `_3`, … added when that name is taken. The file is readable by its owner only.
   * @throws DispyError `DISPY_ERR_RECOVER_FILE` when the named file exists (it may hold the jobs
   *   of a client that died) or the file cannot be created.
   */
  static create(
    file: string | undefined,
    init: RecoverFileInit,
    options: RecoverFileWriterOptions & { dir?: string } = {},
  ): RecoverFileWriter {
    const header: RecoverFileHeader = {
      type: 'header',
      format: RECOVER_FILE_FORMAT,
      version: RECOVER_FILE_VERSION,
      computeId: init.computeId,
      name: init.name,
      createdAt: new Date().toISOString(),
      client: os.hostname(),
      ...(init.tls ? { tls: init.tls } : {}),
    };
    const candidates =
      file !== undefined
        ? [path.resolve(file)]
        : Array.from({ length: 100 }, (_, i) => {
            const name = defaultRecoverFileName(new Date()) + (i === 0 ? '' : `_${i + 1}`);
            return path.resolve(options.dir ?? process.cwd(), name);
          });
    for (const candidate of candidates) {
      let fd: number;
      try {
        fd = fs.openSync(candidate, 'wx', 0o600);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EEXIST' && file === undefined) continue;
        throw new DispyError(
          ErrorCode.RECOVER_FILE,
          code === 'EEXIST'
            ? `recover file ${candidate} exists: it may hold the jobs of a client that died; recover them with recoverJobs(${JSON.stringify(candidate)}), or delete it`
            : `recover file ${candidate} cannot be created: ${(error as Error).message}`,
          { cause: error },
        );
      }
      const writer = new RecoverFileWriter(candidate, fd, options);
      writer.record(header);
      writer.flush();
      if (writer.fd === undefined) {
        throw new DispyError(ErrorCode.RECOVER_FILE, `recover file ${candidate} cannot be written`);
      }
      return writer;
    }
    throw new DispyError(ErrorCode.RECOVER_FILE, `no free recover file name in ${options.dir ?? process.cwd()} (100 taken this second)`);
  }

  /**
   * Opens an existing recover file to append to it (recoverJobs marks what it collected). A
   * record cut at the end (`wholeBytes` is where the last whole one ends) is removed first, so
   * the next record starts on a line of its own.
   * @throws DispyError `DISPY_ERR_RECOVER_FILE` when it cannot be opened
   */
  static append(
    file: string,
    contents: { wholeBytes: number; nodes: ReadonlyMap<number, NodeRecord> },
    options: RecoverFileWriterOptions = {},
  ): RecoverFileWriter {
    try {
      const fd = fs.openSync(file, 'r+');
      fs.ftruncateSync(fd, contents.wholeBytes);
      const writer = new RecoverFileWriter(file, fd, options, [...contents.nodes.values()]);
      writer.position = contents.wholeBytes;
      return writer;
    } catch (error) {
      throw new DispyError(ErrorCode.RECOVER_FILE, `recover file ${file} cannot be written: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Where the next write goes (append: after the last whole record). */
  private position?: number;

  /** Jobs on nodes whose outcome the program has not had. */
  get pending(): number {
    return this.running.size;
  }

  /** Records a node (once); returns its number. */
  node(node: RecoverNode): number {
    const key = `${node.host}:${node.port}`;
    let index = this.nodes.get(key);
    if (index === undefined) {
      index = this.nodes.size;
      this.nodes.set(key, index);
      this.record({ type: 'node', node: index, host: node.host, port: node.port, name: node.name } satisfies NodeRecord);
    }
    return index;
  }

  /** A job went to a node. `id` (the program's job.id) is kept when it is a string, a finite number or a boolean. */
  jobRunning(job: number, node: RecoverNode, id?: unknown): void {
    const record: JobRecord = { type: 'job', job, state: 'running', node: this.node(node) };
    if (typeof id === 'string' || typeof id === 'boolean' || (typeof id === 'number' && Number.isFinite(id))) record.id = id;
    this.running.add(job);
    this.record(record);
  }

  /** A job went back to the client's queue (its node went away; it runs elsewhere). */
  jobQueued(job: number): void {
    if (!this.running.delete(job)) return;
    this.record({ type: 'job', job, state: 'queued' } satisfies JobRecord);
  }

  /** A job ended; its outcome reached the program. */
  jobEnded(job: number, state: Exclude<JobState, 'queued' | 'running'>): void {
    this.running.delete(job);
    this.record({ type: 'job', job, state } satisfies JobRecord);
  }

  /** Writes the buffered records now. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.buffered.length === 0 || this.fd === undefined) return;
    const bytes = Buffer.from(this.buffered.join(''));
    this.buffered = [];
    try {
      for (let done = 0; done < bytes.length;) {
        const written = fs.writeSync(this.fd, bytes, done, bytes.length - done, this.position);
        done += written;
        if (this.position !== undefined) this.position += written;
      }
    } catch (error) {
      this.stop();
      this.options.onError?.(
        new DispyError(ErrorCode.RECOVER_FILE, `recover file ${this.path} cannot be written: ${(error as Error).message}`, {
          cause: error,
        }),
      );
    }
  }

  /** Writes what is buffered and closes the file; `remove` deletes it (nothing in it is needed any more). */
  close(options: { remove?: boolean } = {}): void {
    this.flush();
    this.stop();
    if (options.remove) fs.rmSync(this.path, { force: true });
  }

  private record(record: RecoverRecord): void {
    if (this.fd === undefined) return;
    this.buffered.push(JSON.stringify(record) + '\n');
    if (this.buffered.length >= this.flushRecords) {
      this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  private stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.buffered = [];
    openWriters.delete(this);
    if (this.fd === undefined) return;
    try {
      fs.closeSync(this.fd);
    } catch {
      // closing is all that is left to do with it
    }
    this.fd = undefined;
  }
}
