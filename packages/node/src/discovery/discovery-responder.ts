import dgram from 'node:dgram';
import { DispyError, ErrorCode, PROTOCOL_VERSION, openDatagram, sealDatagram, type dispy } from '@dispy/protocol';
import { isWildcard, localAddressFacing, broadcastAddressOf, type Logger } from '@dispy/protocol/internal';

export interface DiscoveryResponderOptions {
  secret: string;
  hosts: string[];
  port: number;
  logger: Logger;
  /** What to tell a client that pinged from `remote`. */
  describe: (remote: string) => Promise<Omit<dispy.IDiscoveryReply, 'nonce'>>;
}

/**
 * Answers authenticated discovery pings on UDP. Each served address gets a unicast socket; on a
 * real interface a second socket on its directed broadcast address hears broadcast pings (a
 * socket bound to a unicast address does not receive them on Linux). Serving all interfaces
 * binds 0.0.0.0, which hears both.
 */
export class DiscoveryResponder {
  private readonly sockets: dgram.Socket[] = [];

  constructor(private readonly options: DiscoveryResponderOptions) {}

  /**
   * Binds every socket.
   * @throws DispyError (code `DISPY_ERR_START`) naming the address that could not be bound; the
   * sockets bound before it stay open until close()
   */
  async start(): Promise<void> {
    const { hosts, port } = this.options;
    for (const host of hosts.length > 0 ? hosts : ['0.0.0.0']) {
      const unicast = await this.bind(host, port);
      const broadcast = isWildcard(host) ? undefined : broadcastAddressOf(host);
      // Replies to broadcast pings leave from the unicast socket, so their source is our address.
      if (broadcast) await this.bind(broadcast, port, unicast);
    }
  }

  close(): void {
    for (const socket of this.sockets) {
      try {
        socket.close();
      } catch {
        // never bound, or closed already
      }
    }
    this.sockets.length = 0;
  }

  private bind(address: string, port: number, replyVia?: dgram.Socket): Promise<dgram.Socket> {
    const socket = dgram.createSocket({ type: address.includes(':') ? 'udp6' : 'udp4', reuseAddr: true });
    this.sockets.push(socket);
    socket.on('message', (message, remote) => {
      this.answer(replyVia ?? socket, message, remote).catch((error: Error) => {
        this.options.logger.debug(`discovery ping from ${remote.address}: ${error.message}`);
      });
    });
    return new Promise((resolve, reject) => {
      const failed = (error: Error): void => {
        reject(new DispyError(ErrorCode.START, `cannot serve on ${address} port ${port} (UDP): ${error.message}`, { cause: error }));
      };
      socket.once('error', failed);
      socket.bind(port, address, () => {
        socket.off('error', failed);
        socket.on('error', (error) => this.options.logger.warn(`discovery socket ${address}:${port}: ${error.message}`));
        resolve(socket);
      });
    });
  }

  private async answer(socket: dgram.Socket, message: Buffer, remote: dgram.RemoteInfo): Promise<void> {
    const { secret, logger } = this.options;
    const opened = openDatagram(secret, message);
    if (!opened || opened.body.kind !== 'ping') return;
    const nonce = opened.body.ping!.nonce;
    const from = `${remote.address}:${remote.port}`;
    if (opened.version !== PROTOCOL_VERSION) {
      logger.warn(`discovery ping from ${from} speaks protocol ${opened.version}, this node ${PROTOCOL_VERSION}; ignored`);
      this.send(socket, remote, { refused: { nonce, reason: `protocol version ${opened.version} is not ${PROTOCOL_VERSION}` } });
      return;
    }
    if (!opened.authentic) {
      logger.warn(`discovery ping from ${from} is not signed with this node's secret; refused`);
      this.send(socket, remote, { refused: { nonce, reason: 'the secrets differ' } });
      return;
    }
    const info = await this.options.describe(remote.address);
    const tcpHost = info.tcpHost && !isWildcard(info.tcpHost) ? info.tcpHost : localAddressFacing(remote.address);
    this.send(socket, remote, { reply: { ...info, nonce, tcpHost } });
  }

  private send(socket: dgram.Socket, remote: dgram.RemoteInfo, body: dispy.IDatagramBody): void {
    socket.send(sealDatagram(this.options.secret, body), remote.port, remote.address, (error) => {
      if (error) this.options.logger.debug(`discovery reply to ${remote.address}: ${error.message}`);
    });
  }
}
