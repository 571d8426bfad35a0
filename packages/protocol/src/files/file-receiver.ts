import { constants } from 'node:fs';
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { chmod, link, lstat, open, rename, rm, type FileHandle } from 'node:fs/promises';
import type { dispy } from '../schema/schema.js';
import { confine, confineReal, maskMode } from './confine.js';
import { DispyError } from '../errors/dispy-error.js';
import { ErrorCode } from '../errors/error-codes.js';

/** A file that arrived whole, its hash checked. */
export interface ReceivedFile {
  transferId: number;
  name: string;
  path: string;
  size: number;
  computeId: string;
  jobId: number;
}

export interface FileReceiverOptions {
  /** Where a transfer's files go (per computation on a node; the working directory on a client). */
  rootFor(chunk: dispy.IFileChunk): string;
  /** Largest file accepted, in bytes (0: no limit). */
  maxFileSize: number;
  /** Most bytes accepted for the files of one job (by computation and job id) until `jobEnded` (0 or undefined: no limit). */
  maxJobSize?: number;
  /** Called with the first chunk of each transfer; throws (a DispyError) to refuse it. */
  accept?(chunk: dispy.FileChunk): void;
  /**
   * Whether an existing file at `target` may be replaced by the transfer (default: yes). When not,
   * the file takes its name only if none exists then (atomically), or the transfer fails.
   */
  mayReplace?(target: string): boolean;
  /** Mode of the directories made for the files (before the umask); default 0o755. */
  dirMode?: number;
  /**
   * Called once per transfer: the file, or why it was refused (its partial file is removed),
   * with the name and computation the sender gave.
   */
  onDone(transferId: number, result: ReceivedFile | Error, about: { name: string; computeId: string; jobId: number }): void;
  /** Stop reading the socket while this many bytes wait to be written (constant memory). */
  pause(): void;
  resume(): void;
}

interface Transfer {
  name: string;
  target: string;
  partial: string;
  size: number;
  received: number;
  hash: Hash;
  file: Promise<FileHandle>;
  writes: Promise<unknown>;
  computeId: string;
  jobId: number;
  mode: number;
  /** Bytes counted against the job's limit (released when the transfer fails). */
  reserved: number;
  failed?: Error;
}

/** Bytes waiting to reach the disk before the socket is paused. */
const HIGH_WATER = 4 * 1024 * 1024;

/**
 * Writes incoming FileChunk frames to disk: each transfer goes to a partial file beside its
 * target, confined to its root by its real path (no `..`, no absolute path, no symbolic link at
 * any level), checked against the size limits and, at the end, the sha256 the sender computed;
 * only then does it take its name (a rename), with its mode masked to 0644 or 0755. A transfer
 * cut midway leaves nothing. Writes are queued in order, and the socket pauses while too much
 * waits, so memory stays constant whatever the file's size.
 */
export class FileReceiver {
  private readonly transfers = new Map<number, Transfer>();
  /** Bytes of files taken (or being taken) per job, `computeId/jobId`. */
  private readonly jobBytes = new Map<string, number>();
  private waiting = 0;
  private paused = false;

  constructor(private readonly options: FileReceiverOptions) {}

  /**
   * Handles one chunk, whose bytes are `data` (the frame's attachment, in pieces). Errors end
   * that transfer (reported through onDone), never the caller.
   */
  receive(chunk: dispy.FileChunk, data: readonly Buffer[] = []): void {
    const id = Number(chunk.transferId);
    let transfer = this.transfers.get(id);
    if (!transfer) {
      if (Number(chunk.offset) !== 0) return; // the rest of a transfer refused earlier
      try {
        transfer = this.begin(id, chunk);
      } catch (error) {
        // Answered at once, and nothing kept: the transfer's later chunks (offset > 0) are dropped.
        this.options.onDone(id, error as Error, { name: chunk.path, computeId: chunk.computeId, jobId: Number(chunk.jobId) });
        return;
      }
      this.transfers.set(id, transfer);
    }
    if (transfer.failed) {
      if (chunk.last) void this.end(id, transfer, chunk);
      return;
    }
    let length = 0;
    for (const piece of data) length += piece.length;
    transfer.received += length;
    const limit = this.options.maxFileSize;
    if (limit > 0 && transfer.received > limit) {
      transfer.failed = new DispyError(ErrorCode.FILE, `file ${transfer.name} exceeds the size limit of ${limit} bytes`);
    } else if (transfer.received > transfer.reserved && this.options.maxJobSize) {
      transfer.failed = new DispyError(ErrorCode.FILE, `file ${transfer.name}: more bytes arrived than the ${transfer.size} announced`);
    } else if (Number(chunk.offset) + length !== transfer.received) {
      transfer.failed = new Error(`file ${transfer.name}: chunk at offset ${chunk.offset} is out of order`);
    } else if (length > 0) {
      for (const piece of data) transfer.hash.update(piece);
      this.waiting += length;
      const at = Number(chunk.offset);
      // The chain never rejects: a failed write (a full disk, a directory that could not be
      // made) fails the transfer, which its last chunk reports, and the writes after it are
      // skipped; either way the bytes stop counting against the high-water mark.
      transfer.writes = transfer.writes
        .then(async () => {
          if (!transfer.failed) await writeAll(await transfer.file, data, at);
        })
        .catch((error: Error) => {
          transfer.failed ??= error;
        })
        .finally(() => {
          this.waiting -= length;
          if (this.paused && this.waiting < HIGH_WATER / 2) {
            this.paused = false;
            this.options.resume();
          }
        });
      if (!this.paused && this.waiting > HIGH_WATER) {
        this.paused = true;
        this.options.pause();
      }
    }
    if (chunk.last) void this.end(id, transfer, chunk);
  }

  /** The job ended: its files no longer count against the per-job limit. */
  jobEnded(computeId: string, jobId: number): void {
    this.jobBytes.delete(`${computeId}/${jobId}`);
  }

  /** Abandons every transfer in progress (the connection is gone) and removes partial files. */
  async abort(): Promise<void> {
    const pending = [...this.transfers.values()];
    this.transfers.clear();
    await Promise.all(pending.map((transfer) => this.discard(transfer)));
  }

  private begin(id: number, chunk: dispy.FileChunk): Transfer {
    this.options.accept?.(chunk);
    const root = this.options.rootFor(chunk);
    confine(root, chunk.path); // refuses a bad name at once; confineReal checks the disk below
    const size = Number(chunk.size);
    const limit = this.options.maxFileSize;
    if (limit > 0 && size > limit)
      throw new DispyError(ErrorCode.FILE, `file ${chunk.path} of ${size} bytes exceeds the size limit of ${limit} bytes`);
    const jobLimit = this.options.maxJobSize ?? 0;
    const jobKey = `${chunk.computeId}/${Number(chunk.jobId)}`;
    const jobTotal = this.jobBytes.get(jobKey) ?? 0;
    if (jobLimit > 0) {
      if (jobTotal + size > jobLimit) {
        throw new DispyError(
          ErrorCode.FILE,
          `file ${chunk.path} of ${size} bytes exceeds the limit of ${jobLimit} bytes for the files of job ${Number(chunk.jobId)} (${jobTotal} taken)`,
        );
      }
      this.jobBytes.set(jobKey, jobTotal + size);
    }
    const transfer: Transfer = {
      name: chunk.path,
      target: '',
      partial: '',
      size,
      received: 0,
      hash: createHash('sha256'),
      file: Promise.resolve(undefined as unknown as FileHandle),
      writes: Promise.resolve(),
      computeId: chunk.computeId,
      jobId: Number(chunk.jobId),
      mode: maskMode(chunk.mode),
      reserved: jobLimit > 0 ? size : Infinity,
    };
    const file = confineReal(root, chunk.path, { makeDirs: true, dirMode: this.options.dirMode }).then((target) => {
      transfer.target = target;
      transfer.partial = `${target}.dispy-part-${id}-${randomBytes(6).toString('hex')}`;
      // O_EXCL and O_NOFOLLOW: a name planted meanwhile (a symbolic link) is never opened.
      return open(transfer.partial, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    });
    file.catch(() => undefined);
    transfer.file = file;
    transfer.writes = file;
    return transfer;
  }

  private async end(id: number, transfer: Transfer, chunk: dispy.FileChunk): Promise<void> {
    this.transfers.delete(id);
    try {
      await transfer.writes;
    } catch (error) {
      transfer.failed ??= error as Error;
    }
    if (!transfer.failed) {
      const digest = transfer.hash.digest();
      if (!Buffer.from(chunk.sha256).equals(digest)) {
        transfer.failed = new Error(`file ${transfer.name} arrived damaged: its sha256 does not match the sender's`);
      } else if (transfer.received !== transfer.size) {
        transfer.failed = new Error(`file ${transfer.name}: ${transfer.received} bytes arrived, ${transfer.size} announced`);
      }
    }
    if (transfer.failed) {
      this.release(transfer);
      await this.discard(transfer);
      this.options.onDone(id, transfer.failed, transfer);
      return;
    }
    try {
      await (await transfer.file).close();
      await chmod(transfer.partial, transfer.mode);
      await this.place(transfer);
    } catch (error) {
      this.release(transfer);
      await this.discard(transfer);
      this.options.onDone(id, error as Error, transfer);
      return;
    }
    this.options.onDone(
      id,
      {
        transferId: id,
        name: transfer.name,
        path: transfer.target,
        size: transfer.received,
        computeId: transfer.computeId,
        jobId: transfer.jobId,
      },
      transfer,
    );
  }

  /**
   * Gives the partial file its name: a rename (which replaces a file there, or a symbolic link
   * planted meanwhile, never following it), or where nothing may be replaced, a hard link that
   * fails when the name exists, then the partial name removed.
   */
  private async place(transfer: Transfer): Promise<void> {
    const existing = await lstat(transfer.target).catch(() => undefined);
    const { options } = this;
    if (!options.mayReplace || (existing?.isFile() && options.mayReplace(transfer.target))) {
      if (existing && !existing.isFile()) throw new DispyError(ErrorCode.FILE, `${transfer.name} exists and is not a regular file`);
      await rename(transfer.partial, transfer.target);
      return;
    }
    if (existing) throw new DispyError(ErrorCode.FILE, `${transfer.name} exists already and was not sent by this cluster; not replaced`);
    await link(transfer.partial, transfer.target).catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'EEXIST' ? new DispyError(ErrorCode.FILE, `${transfer.name} appeared meanwhile; not replaced`) : error;
    });
    await rm(transfer.partial, { force: true });
  }

  /** A failed transfer's bytes no longer count against its job's limit. */
  private release(transfer: Transfer): void {
    if (!Number.isFinite(transfer.reserved)) return;
    const key = `${transfer.computeId}/${transfer.jobId}`;
    const left = (this.jobBytes.get(key) ?? 0) - transfer.reserved;
    if (left > 0) this.jobBytes.set(key, left);
    else this.jobBytes.delete(key);
  }

  private async discard(transfer: Transfer): Promise<void> {
    try {
      // Waited for even when the transfer is cut before its file was opened: it is removed below.
      await (await transfer.file).close();
    } catch {
      // never opened, or closed already
    }
    if (!transfer.partial) return;
    // Nothing to remove when it could not be made (its directory is a file, say).
    await rm(transfer.partial, { force: true }).catch(() => undefined);
  }
}

/** Writes every piece at `position` on, in one system call when the kernel takes them all. */
async function writeAll(file: FileHandle, pieces: readonly Buffer[], position: number): Promise<void> {
  const left = pieces.slice();
  while (left.length > 0) {
    let { bytesWritten } = await file.writev(left, position);
    if (bytesWritten === 0) throw new Error('the disk took no bytes');
    position += bytesWritten;
    // A short write (rare for regular files) leaves the rest to write again.
    while (left.length > 0 && bytesWritten >= left[0]!.length) bytesWritten -= left.shift()!.length;
    if (left.length > 0 && bytesWritten > 0) left[0] = left[0]!.subarray(bytesWritten);
  }
}
