import dgram from 'node:dgram';
import {
  DispyError,
  ErrorCode,
  NONCE_BYTES,
  PROTOCOL_VERSION,
  ReplayGuard,
  openDatagram,
  sealDatagram,
  type DatagramVerdict,
  type dispy,
} from '@dispy/protocol';
import { DropSummary, isWildcard, localAddressFacing, broadcastAddressOf, type Logger } from '@dispy/protocol/internal';

/** A source (address) is told `refused` at most once in this many ms. */
export const REFUSAL_INTERVAL_MS = 10_000;
/** Sources remembered for the refusal rate limit; beyond, no refusal is sent until they expire. */
const REFUSAL_SOURCES_KEPT = 1024;

export interface DiscoveryResponderOptions {
  secret: string;
  hosts: string[];
  port: number;
  logger: Logger;
  /** What to tell a client that pinged from `remote`. */
  describe: (remote: string) => Promise<Omit<dispy.IDiscoveryReply, 'nonce'>>;
  /** @internal The clock (tests). */
  now?: () => number;
}

const VERDICTS: Record<Exclude<DatagramVerdict, 'fresh'>, string> = {
  stale: 'stale',
  replayed: 'replayed',
  malformed: 'malformed',
  overflow: 'over the replay cache',
};

/**
 * Answers authenticated discovery pings on UDP, once each: a ping must be fresh (sent within
 * DATAGRAM_WINDOW_MS of our clock) and new (its nonce unseen), and no answer is larger than its
 * ping (clients pad pings to MAX_DATAGRAM_BYTES; a ping too small for its answer gets none). A
 * ping that does not prove the secret is told `refused`, sealed with the empty secret (a MAC under
 * ours would help guess it offline) and naming nothing of the node, at most once per source
 * every REFUSAL_INTERVAL_MS. Dropped datagrams are counted and summed up in the log once a minute.
 *
 * Each served address gets a unicast socket; on a Each served address gets a unicast socket; on a
 * real interface a second socket on its directed broadcast address hears broadcast pings (a
 * socket bound to a unicast address does not receive them on Linux). Serving all interfaces
 * binds 0.0.0.0, which hears both.
 */
export class DiscoveryResponder {
  private readonly sockets: dgram.Socket[] = [];
  private readonly guard: ReplayGuard;
  private readonly drops: DropSummary;
  /** Source address to the time it was last told `refused`, oldest first. */
  private readonly refusedAt = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly options: DiscoveryResponderOptions) {
    this.now = options.now ?? Date.now;
    this.guard = new ReplayGuard({ now: this.now });
    this.drops = new DropSummary(options.logger);
  }

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
    this.drops.close();
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
    const { secret } = this.options;
    const opened = openDatagram(secret, message);
    if (!opened) return;
    // A datagram we cannot open (sealed with another secret, or none) has no kind: we answer it as
    // the ping it means to be, with a refusal echoing the nonce it carries in the clear.
    const unreadable = !opened.authentic && opened.body.kind === undefined;
    if (opened.body.kind !== 'ping' && !unreadable) return;
    const nonce = opened.body.nonce;
    if (opened.version !== PROTOCOL_VERSION) {
      this.drops.count('of another protocol version (refused)');
      this.refuse(socket, remote, message, nonce, `protocol version ${opened.version} is not ${PROTOCOL_VERSION}`);
      return;
    }
    if (!opened.authentic) {
      this.drops.count('signed with another secret (refused)');
      this.refuse(socket, remote, message, nonce, 'the secrets differ');
      return;
    }
    const verdict = this.guard.check(opened.body);
    if (verdict !== 'fresh') {
      this.drops.count(VERDICTS[verdict]);
      return;
    }
    const info = await this.options.describe(remote.address);
    const tcpHost = info.tcpHost && !isWildcard(info.tcpHost) ? info.tcpHost : localAddressFacing(remote.address);
    const reply = sealDatagram(secret, { reply: { ...info, nonce, tcpHost } });
    if (reply.length > message.length) {
      this.drops.count('too small for their reply');
      return;
    }
    this.send(socket, remote, reply);
  }

  /** Says `refused` to a ping we cannot verify: never larger than it, at most once per source per interval. */
  private refuse(socket: dgram.Socket, remote: dgram.RemoteInfo, ping: Buffer, nonce: Uint8Array, reason: string): void {
    if (nonce.length !== NONCE_BYTES) return;
    const now = this.now();
    for (const [address, at] of this.refusedAt) {
      if (now - at < REFUSAL_INTERVAL_MS) break;
      this.refusedAt.delete(address);
    }
    if (this.refusedAt.has(remote.address) || this.refusedAt.size >= REFUSAL_SOURCES_KEPT) return;
    // The empty secret: a checksum, not a MAC under ours over bytes the sender chose.
    const refused = sealDatagram('', { refused: { nonce, reason } });
    if (refused.length > ping.length) return;
    this.refusedAt.set(remote.address, now);
    this.send(socket, remote, refused);
  }

  private send(socket: dgram.Socket, remote: dgram.RemoteInfo, datagram: Buffer): void {
    socket.send(datagram, remote.port, remote.address, (error) => {
      if (error) this.options.logger.debug(`discovery reply to ${remote.address}: ${error.message}`);
    });
  }
}
