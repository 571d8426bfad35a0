import dgram from 'node:dgram';
import net from 'node:net';
import { DispyError, ErrorCode } from '@dispy/protocol';

/**
 * Binds a UDP socket, with broadcast allowed once bound.
 * @throws DispyError (code `DISPY_ERR_START`) naming the address and what holds it when it is taken
 */
export function bindUdp(address: string, port: number, reuseAddr: boolean, what: string): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: net.isIPv6(address) ? 'udp6' : 'udp4', reuseAddr });
  return new Promise((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException): void => {
      socket.close();
      const hint = error.code === 'EADDRINUSE' ? ` (taken: ${what})` : '';
      reject(new DispyError(ErrorCode.START, `cannot listen on ${address} port ${port} (UDP): ${error.message}${hint}`, { cause: error }));
    };
    socket.once('error', failed);
    socket.bind(port, address, () => {
      socket.off('error', failed);
      socket.setBroadcast(true);
      resolve(socket);
    });
  });
}

/** `host:port`, with brackets around an IPv6 host. */
export function hostPort(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}
