import dgram from 'node:dgram';
import { DEFAULT_CLIENT_PORT, sealDatagram } from '@dispy/protocol';
import { broadcastAddresses, type Logger } from '@dispy/protocol/internal';

export interface AnnouncerOptions {
  secret: string;
  /** The address clients should ping; empty when the node serves every interface. */
  tcpHost: string;
  tcpPort: number;
  /** `HOST` or `HOST:PORT` of a client or scheduler to tell directly (--scheduler-host). */
  schedulerHost?: string;
  /** Broadcast on the local networks too (the node serves a non-loopback address). */
  broadcast: boolean;
  logger: Logger;
}

/**
 * Tells clients that a node is up and free: an authenticated datagram to the client port,
 * broadcast on the local networks and sent to `--scheduler-host`. A client that wants the node
 * pings it as usual, so nodes that start after a client are found at once. It names nothing of the
 * node (it is read before anyone authenticated); its time and nonce keep it from being replayed.
 */
export class Announcer {
  private socket?: dgram.Socket;

  constructor(private readonly options: AnnouncerOptions) {}

  announce(): void {
    const { secret, tcpHost, tcpPort, schedulerHost, broadcast, logger } = this.options;
    const targets: Array<[string, number]> = [];
    if (schedulerHost) {
      const [host, port] =
        schedulerHost.includes(':') && !schedulerHost.includes('::')
          ? [schedulerHost.slice(0, schedulerHost.lastIndexOf(':')), Number(schedulerHost.slice(schedulerHost.lastIndexOf(':') + 1))]
          : [schedulerHost, DEFAULT_CLIENT_PORT];
      targets.push([host, port]);
    }
    if (broadcast) for (const address of broadcastAddresses()) targets.push([address, DEFAULT_CLIENT_PORT]);
    if (targets.length === 0) return;
    if (!this.socket) {
      this.socket = dgram.createSocket('udp4');
      this.socket.on('error', (error) => logger.debug(`announcement: ${error.message}`));
      this.socket.bind(() => this.socket?.setBroadcast(true));
      this.socket.unref();
    }
    for (const [host, port] of targets) {
      // One nonce per target: a client reached on two of its networks drops the second as replayed.
      const datagram = sealDatagram(secret, { announce: { tcpHost, tcpPort } });
      this.socket.send(datagram, port, host, (error) => {
        if (error) logger.debug(`announcement to ${host}:${port}: ${error.message}`);
      });
    }
  }

  close(): void {
    this.socket?.close();
    this.socket = undefined;
  }
}
