import { createHash, type Hash } from 'node:crypto';
import { mkdir, open, rename, rm, chmod, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { dispy } from '../schema/generated.js';
import { confine } from './confine.js';
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
  failed?: Error;
}

/** Bytes waiting to reach the disk before the socket is paused. */
const HIGH_WATER = 4 * 1024 * 1024;

/**
 * Writes incoming FileChunk frames to disk: each transfer goes to a partial file beside its
 * target, confined to its root, checked against the size limit and, at the end, the sha256 the
 * sender computed; only then does it take its name. Writes are queued in order, and the socket
 * pauses while too much waits, so memory stays constant whatever the file's size.
 */
export class FileReceiver {
  private readonly transfers = new Map<number, Transfer>();
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
        this.transfers.set(id, this.refused(chunk, error as Error));
        this.finishIfLast(id, chunk);
        return;
      }
      this.transfers.set(id, transfer);
    }
    if (transfer.failed) {
      this.finishIfLast(id, chunk);
      return;
    }
    let length = 0;
    for (const piece of data) length += piece.length;
    transfer.received += length;
    const limit = this.options.maxFileSize;
    if (limit > 0 && transfer.received > limit) {
      transfer.failed = new Error(`file ${transfer.name} exceeds the size limit of ${limit} bytes`);
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

  /** Abandons every transfer in progress (the connection is gone) and removes partial files. */
  async abort(): Promise<void> {
    const pending = [...this.transfers.values()];
    this.transfers.clear();
    await Promise.all(pending.map((transfer) => this.discard(transfer)));
  }

  private begin(id: number, chunk: dispy.FileChunk): Transfer {
    const root = this.options.rootFor(chunk);
    const target = confine(root, chunk.path);
    const size = Number(chunk.size);
    const limit = this.options.maxFileSize;
    if (limit > 0 && size > limit)
      throw new DispyError(ErrorCode.FILE, `file ${chunk.path} of ${size} bytes exceeds the size limit of ${limit} bytes`);
    const partial = `${target}.dispy-part-${id}`;
    const file = mkdir(path.dirname(target), { recursive: true }).then(() => open(partial, 'w', 0o600));
    file.catch(() => undefined);
    return {
      name: chunk.path,
      target,
      partial,
      size,
      received: 0,
      hash: createHash('sha256'),
      file,
      writes: file,
      computeId: chunk.computeId,
      jobId: Number(chunk.jobId),
      mode: chunk.mode || 0o644,
    };
  }

  private refused(chunk: dispy.FileChunk, error: Error): Transfer {
    const never = Promise.reject(error);
    never.catch(() => undefined);
    return {
      name: chunk.path,
      target: '',
      partial: '',
      size: 0,
      received: 0,
      hash: createHash('sha256'),
      file: never,
      writes: Promise.resolve(),
      computeId: chunk.computeId,
      jobId: Number(chunk.jobId),
      mode: 0,
      failed: error,
    };
  }

  private finishIfLast(id: number, chunk: dispy.FileChunk): void {
    const transfer = this.transfers.get(id);
    if (chunk.last && transfer) void this.end(id, transfer, chunk);
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
      await this.discard(transfer);
      this.options.onDone(id, transfer.failed, transfer);
      return;
    }
    try {
      await (await transfer.file).close();
      await chmod(transfer.partial, transfer.mode);
      await rename(transfer.partial, transfer.target);
    } catch (error) {
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

  private async discard(transfer: Transfer): Promise<void> {
    if (!transfer.partial) return;
    try {
      await (await transfer.file).close();
    } catch {
      // never opened
    }
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
