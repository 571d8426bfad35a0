/*
 * The job channel: a socket pair between the node process and each worker (the worker's fd 4)
 * that carries its jobs, and drops of jobs, in order. A job's encoded arguments follow its
 * message as the frame's attachment, in the pieces they arrived from the client: the node passes
 * them on without copying or re-encoding them, which the IPC channel would do (megabyte arguments
 * cost more there than on the wire). Messages are small objects in V8's serialization; both
 * ends run the same Node binary.
 */
import type { Socket } from 'node:net';
import net from 'node:net';
import { deserialize, serialize } from 'node:v8';
import { FrameDecoder, frameHeader } from '@dispy/protocol/codec';
import type { JobChannelMessage } from './worker-messages.js';

/** The worker's file descriptor of its end (0–2 are stdio, 3 is IPC). */
export const JOB_CHANNEL_FD = 4;

/** The node's end: writes jobs and drops. */
export class JobChannelWriter {
  constructor(private readonly socket: Socket) {
    // A write after the worker died fails here and is handled by its 'exit'.
    socket.on('error', () => undefined);
  }

  /**
   * Sends messages together (one system call for a batch); `args` is the job's attachment, which
   * must not change afterwards.
   */
  send(messages: readonly { message: JobChannelMessage; args?: readonly Uint8Array[] }[]): void {
    if (this.socket.destroyed) return;
    this.socket.cork();
    for (const { message, args } of messages) {
      const bytes = serialize(message);
      if (!args) {
        this.socket.write(frameHeader(bytes.length));
        this.socket.write(bytes);
        continue;
      }
      let length = 0;
      for (const piece of args) length += piece.length;
      this.socket.write(frameHeader(bytes.length, length));
      this.socket.write(bytes);
      for (const piece of args) if (piece.length > 0) this.socket.write(piece);
    }
    this.socket.uncork();
  }
}

/** The worker's end: calls `onMessage` for each message, with a job's arguments in one buffer. */
export function readJobChannel(onMessage: (message: JobChannelMessage, args: Uint8Array) => void): Socket {
  const socket = new net.Socket({ fd: JOB_CHANNEL_FD, readable: true, writable: false });
  const decoder = new FrameDecoder();
  socket.on('data', (chunk: Buffer) => {
    for (const { message, attachment = [] } of decoder.push(chunk)) {
      const args = attachment.length === 1 ? attachment[0]! : Buffer.concat(attachment);
      onMessage(deserialize(message) as JobChannelMessage, args);
    }
  });
  return socket;
}
