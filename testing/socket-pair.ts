import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

/**
 * One end of an in-memory connection, shaped like the parts of `net.Socket` that dispy's
 * channels use. Bytes written at one end arrive at the other on the next tick
 * (`process.nextTick`, which fake timers leave alone), in order and unchanged, so a unit test can
 * drive a session with exact bytes and fake timers and see every frame the other side sends.
 */
export class MemorySocket extends Duplex {
  peer!: MemorySocket;
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  bytesWritten = 0;
  bytesRead = 0;
  /** Whether ref() (true) or unref() (false) was called last. */
  referenced = true;
  noDelay = false;
  timeoutMs = 0;
  private onTimeout?: () => void;

  constructor(local: { address: string; port: number }, remote: { address: string; port: number }) {
    super({ allowHalfOpen: false });
    this.localAddress = local.address;
    this.localPort = local.port;
    this.remoteAddress = remote.address;
    this.remotePort = remote.port;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.bytesWritten += chunk.length;
    const peer = this.peer;
    process.nextTick(() => {
      if (peer.destroyed) return;
      peer.bytesRead += chunk.length;
      peer.push(chunk);
    });
    callback();
  }

  override _read(): void {}

  override _final(callback: (error?: Error | null) => void): void {
    const peer = this.peer;
    process.nextTick(() => {
      if (!peer.destroyed) peer.push(null);
    });
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A reset: the other end hears of it as an end of stream, then closes.
    const peer = this.peer;
    process.nextTick(() => {
      if (!peer.destroyed) {
        peer.push(null);
        peer.destroy();
      }
    });
    callback(error);
  }

  setNoDelay(noDelay = true): this {
    this.noDelay = noDelay;
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  setTimeout(ms: number, callback?: () => void): this {
    this.timeoutMs = ms;
    this.onTimeout = callback;
    return this;
  }

  /** Fires the idle timeout set with setTimeout, as a real socket would after `timeoutMs`. */
  fireTimeout(): void {
    this.onTimeout?.();
    this.emit('timeout');
  }

  ref(): this {
    this.referenced = true;
    return this;
  }

  unref(): this {
    this.referenced = false;
    return this;
  }

  /** As `net.Socket`: typed so that it can be passed where a Socket is expected. */
  asSocket(): Socket {
    return this as unknown as Socket;
  }
}

/** Two connected in-memory sockets: `client` (127.0.0.1:40000) and `server` (127.0.0.1:51348). */
export function socketPair(
  client = { address: '127.0.0.1', port: 40000 },
  server = { address: '127.0.0.1', port: 51348 },
): { client: MemorySocket; server: MemorySocket } {
  const a = new MemorySocket(client, server);
  const b = new MemorySocket(server, client);
  a.peer = b;
  b.peer = a;
  return { client: a, server: b };
}
