import { stat } from 'node:fs/promises';
import path from 'node:path';
import { confine, sendFileChunks, type FrameSink, type dispy } from '@dispy/protocol';

interface Transfer {
  resolve(): void;
  reject(error: Error): void;
}

/**
 * Files that jobs send to the client (`dispySendFile`): each goes as FileChunk frames, and its
 * sender waits until the client's FileDone says it arrived. When the client goes away, every
 * transfer still waiting fails.
 */
export class OutgoingFiles {
  /** Transfers sent and waiting for the client's FileDone, by transfer id. */
  private readonly waiting = new Map<number, Transfer>();
  private nextTransfer = 1;
  private aborted?: Error;

  constructor(
    private readonly channel: FrameSink,
    /** Largest file sent, in bytes (0: no limit). */
    private readonly maxFileSize: number,
  ) {}

  /**
   * Streams `file`, which must lie in the computation's directory `dir`, to the client.
   * Resolves when the client has it; rejects when it cannot be sent, the client refuses it, or
   * the client goes away.
   */
  async send(computation: { id: string; dir: string }, jobId: number, file: string): Promise<void> {
    this.throwIfAborted();
    const name = path.relative(computation.dir, file);
    confine(computation.dir, name); // refuses a file outside the computation's directory
    const info = await stat(file);
    // The client may have gone while the file was looked at: register no transfer after abort().
    this.throwIfAborted();
    if (!info.isFile()) throw new Error(`${name} is not a regular file`);
    if (this.maxFileSize > 0 && info.size > this.maxFileSize) {
      throw new Error(`${name} is ${info.size} bytes, over the node's limit of ${this.maxFileSize} bytes (--max-file-size)`);
    }
    const transferId = this.nextTransfer++;
    const arrived = new Promise<void>((resolve, reject) => this.waiting.set(transferId, { resolve, reject }));
    // Awaited below only once the chunks are out; a client that goes away meanwhile rejects it.
    arrived.catch(() => undefined);
    try {
      await sendFileChunks(this.channel, { transferId, file, name, computeId: computation.id, jobId });
    } catch (error) {
      this.waiting.delete(transferId);
      throw error;
    }
    await arrived;
  }

  /** Refuses a new transfer once the client is gone (abort()). */
  private throwIfAborted(): void {
    if (this.aborted) throw this.aborted;
  }

  /** The client's FileDone for a transfer. */
  done(done: dispy.FileDone): void {
    const transferId = Number(done.transferId);
    const transfer = this.waiting.get(transferId);
    this.waiting.delete(transferId);
    if (done.ok) transfer?.resolve();
    else transfer?.reject(new Error(done.error || 'the client refused the file'));
  }

  /** The client is gone: every transfer waiting fails with `reason`, and so does every later one. */
  abort(reason: Error): void {
    this.aborted = reason;
    for (const transfer of this.waiting.values()) transfer.reject(reason);
    this.waiting.clear();
  }
}
