import type net from 'node:net';
import type tls from 'node:tls';
import { AuthError } from '../errors/auth-error.js';
import { FramedSocket } from '../framing/framed-socket.js';
import { HANDSHAKE_LIMITS } from '../framing/frame-limits.js';
import { PLAIN_CLIENT_WAIT_MS, looksLikeTls } from './tls.js';

export interface TlsHandoverOptions {
  /** What a plain peer is told (in a plain Error frame) before the connection closes. */
  plainMessage: string;
  /** A plain peer was refused: `why` says how it showed (`sent nothing for 1000 ms`, `spoke plain`). */
  onPlain(why: string): void;
  /** The peer began a TLS handshake: the socket goes to the TLS server. */
  onTls?(): void;
  /** The raw socket closed (whether or not TLS took it over). */
  onClose?(): void;
}

/**
 * Serves TLS on an accepted TCP socket of a server that requires it (a node with --certfile,
 * dispyscheduler with --cluster-certfile): waits for the peer's ClientHello, then hands the socket
 * to `server`, which secures it. A plain peer sends nothing (it waits for our Hello): after
 * PLAIN_CLIENT_WAIT_MS, or at once when its first bytes are not TLS, it is told `plainMessage` in
 * plain, and the connection closes, so neither side hangs.
 */
export function handOverToTls(socket: net.Socket, server: tls.Server, options: TlsHandoverOptions): void {
  const refusePlain = (why: string): void => {
    socket.off('data', onData);
    options.onPlain(why);
    new FramedSocket(socket, { limits: HANDSHAKE_LIMITS, onFrame: () => undefined, onClose: () => undefined }).destroy(
      new AuthError(options.plainMessage),
    );
  };
  const timer = setTimeout(() => refusePlain(`sent nothing for ${PLAIN_CLIENT_WAIT_MS} ms`), PLAIN_CLIENT_WAIT_MS);
  const onData = (chunk: Buffer): void => {
    clearTimeout(timer);
    if (!looksLikeTls(chunk)) {
      refusePlain('spoke plain');
      return;
    }
    options.onTls?.();
    socket.pause();
    socket.unshift(chunk);
    server.emit('connection', socket);
  };
  // Errors of the raw socket before TLS takes it over (a reset) end it quietly.
  socket.on('error', () => undefined);
  socket.once('close', () => {
    clearTimeout(timer);
    options.onClose?.();
  });
  socket.once('data', onData);
}
