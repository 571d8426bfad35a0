import { FileReceiver, type FramedSocket, type ReceivedFile, type dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { SessionComputations } from './computations.js';

export interface IncomingFilesOptions {
  channel: FramedSocket;
  computations: SessionComputations;
  logger: Logger;
  peer: string;
  /** Largest file accepted, in bytes (0: no limit). */
  maxFileSize: number;
}

/**
 * Files the client sends into its computations' directories: those of a setup and the per-job
 * `depends` files. Each transfer is written to disk as it arrives (the socket pauses while the
 * disk lags), answered with FileDone, and reported to the computation waiting for it.
 */
export class IncomingFiles {
  private readonly receiver: FileReceiver;

  constructor(private readonly options: IncomingFilesOptions) {
    const { channel, computations, maxFileSize } = options;
    this.receiver = new FileReceiver({
      rootFor: (chunk) => {
        const computation = computations.find(chunk.computeId ?? '');
        if (!computation) throw new Error(`no computation ${chunk.computeId} here`);
        return computation.dir;
      },
      maxFileSize,
      pause: () => channel.socket.pause(),
      resume: () => channel.socket.resume(),
      onDone: (transferId, result, about) => this.received(transferId, result, about),
    });
  }

  /** A FileChunk frame with its piece of the file. */
  chunk(chunk: dispy.FileChunk, data: Buffer[] | undefined): void {
    this.receiver.receive(chunk, data);
  }

  /** FileKept: the client's copy of a file offered by hash is the node's; nothing to send. */
  kept(kept: dispy.FileKept): void {
    this.options.computations.find(kept.computeId)?.fileArrived(kept.name);
  }

  /** The client is gone: abandons the transfers in progress and removes their partial files. */
  abort(): Promise<void> {
    return this.receiver.abort();
  }

  /** A transfer ended (or failed): tell the client, and the computation waiting for the file. */
  private received(transferId: number, result: ReceivedFile | Error, about: { name: string; computeId: string; jobId: number }): void {
    const { channel, computations, logger, peer } = this.options;
    const failed = result instanceof Error ? result : undefined;
    if (failed) logger.warn(`file from ${peer} refused: ${failed.message}`);
    channel.send({ fileDone: failed ? { transferId, ok: false, error: failed.message } : { transferId, ok: true } });
    computations.find(about.computeId)?.fileArrived(about.name, failed, about.jobId);
  }
}
