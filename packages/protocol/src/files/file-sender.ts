import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Attachment, FrameInit } from '../framing/framed-socket.js';

/** Bytes of file data per FileChunk frame. */
export const FILE_CHUNK_BYTES = 4 * 1024 * 1024;

/** What a file sender needs of a connection: send a frame, and wait while its buffer is full. */
export interface FrameSink {
  send(frame: FrameInit, attachment?: Attachment): boolean;
  drain(): Promise<void>;
  /** Bytes queued on the connection and not yet handed to the kernel. */
  readonly bufferedBytes?: number;
}

/**
 * Bytes a sender lets queue before it waits for 'drain': about one chunk, so the next is read and
 * hashed while this one goes out, and memory stays bounded.
 */
const IN_FLIGHT_BYTES = 4 * 1024 * 1024;

export interface SendFileOptions {
  transferId: number;
  /** The file on this side. */
  file: string;
  /** Its name on the other side (relative to the receiver's directory). */
  name: string;
  computeId?: string;
  jobId?: number;
  /** The file's sha256 when already known (it was offered by hash): it is not hashed again. */
  sha256?: Uint8Array;
  /** SharedJobCluster -> dispyscheduler: the node (host:port) the file is for (sendFile). */
  nodeKey?: string;
}

/**
 * Streams a file as FileChunk frames, each with its piece of the file as the frame's attachment
 * (the bytes read from the file go to the socket as they are, never copied into a message): the
 * first names the file and gives its size, the last carries the sha256 of what was read. Waits whenever the socket's buffer is full, so memory stays
 * constant whatever the file's size. Resolves with the number of bytes sent.
 */
export async function sendFileChunks(sink: FrameSink, options: SendFileOptions): Promise<number> {
  const { transferId, file, name, computeId = '', jobId = 0, sha256, nodeKey } = options;
  const info = await stat(file);
  const hash = createHash('sha256');
  let sent = 0;
  const emit = (data: Buffer, last: boolean): boolean => {
    const frame: FrameInit = {
      fileChunk: {
        transferId,
        path: name,
        offset: sent,
        last,
        computeId,
        jobId,
        ...(nodeKey ? { nodeKey } : {}),
        ...(sent === 0 ? { size: info.size, mode: info.mode & 0o777 } : {}),
        ...(last ? { sha256: sha256 ?? hash.digest() } : {}),
      },
    };
    sent += data.length;
    return sink.send(frame, data);
  };
  // One chunk is held back so that the last frame can carry the hash of the whole.
  let previous: Buffer | undefined;
  for await (const chunk of createReadStream(file, { highWaterMark: FILE_CHUNK_BYTES })) {
    if (previous && !emit(previous, false) && (sink.bufferedBytes ?? Infinity) > IN_FLIGHT_BYTES) await sink.drain();
    if (!sha256) hash.update(chunk as Buffer);
    previous = chunk as Buffer;
  }
  emit(previous ?? Buffer.alloc(0), true);
  return sent;
}
