import dgram from 'node:dgram';
import net from 'node:net';
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
import {
  DropSummary,
  IPV4_MULTICAST_GROUP,
  IPV6_MULTICAST_GROUP,
  broadcastAddressOf,
  interfaceAddresses,
  interfaceOf,
  ipv6Interfaces,
  isWildcard,
  localAddressFacing,
  withoutScope,
  type Logger,
} from '@dispy/protocol/internal';

/** A source (address) is told `refused` at most once in this many ms. */
export const REFUSAL_INTERVAL_MS = 10_000;
/** Sources remembered for the refusal rate limit; beyond, no refusal is sent until they expire. */
const REFUSAL_SOURCES_KEPT = 1024;

export interface DiscoveryResponderOptions {
  secret: string;
  /** Addresses served (-i); empty: every interface, IPv4 and IPv6. */
  hosts: string[];
  /**
   * Addresses clients must connect to (--ext-host), paired with `hosts` by position; one alone
   * stands for every host. Without one, a reply names the address that heard the ping.
   */
  extHosts?: string[];
  port: number;
  /** Also hear pings sent to the IPv4 multicast group (IPV4_MULTICAST_GROUP) on the served interfaces. */
  ipv4Multicast?: boolean;
  logger: Logger;
  /** What to tell a client that pinged from `remote` (the address to connect to is the responder's to say). */
  describe: (remote: string) => Promise<Omit<dispy.IDiscoveryReply, 'nonce' | 'tcpHost'>>;
  /** @internal The clock (tests). */
  now?: () => number;
}

/** What a socket serves: the address it stands for (or a wildcard), and the address to name in replies. */
interface Endpoint {
  host: string;
  ext?: string;
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
 * Each served address gets a unicast socket; on a real interface a second socket on its directed
 * broadcast address hears broadcast pings (a socket bound to a unicast address does not receive
 * them on Linux), and one on the multicast group hears multicast pings (IPv6 always, IPv4 with
 * `ipv4Multicast`). Serving all interfaces binds 0.0.0.0 and :: (IPv6 only where the host has
 * it), which hear all of those once they join the groups on every interface. A reply names the
 * address the ping reached (or the --ext-host paired with it): a node on several networks answers
 * each with its address there.
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
    const { hosts, port, extHosts = [], ipv4Multicast } = this.options;
    const extOf = (i: number): string | undefined => extHosts[i] ?? (extHosts.length === 1 ? extHosts[0] : undefined);
    if (hosts.length === 0) {
      const ext = extOf(0);
      const v4 = await this.bind({ host: '0.0.0.0', ext }, '0.0.0.0', port);
      if (ipv4Multicast) for (const info of interfaceAddresses('IPv4')) this.join(v4, IPV4_MULTICAST_GROUP, info.address);
      // IPv6 where the host has it: a host without IPv6 serves IPv4 alone.
      const v6 = await this.bind({ host: '::', ext }, '::', port).catch((error: Error) => {
        this.options.logger.debug(`discovery on IPv6: ${error.message}`);
        return undefined;
      });
      if (v6) for (const name of ipv6Interfaces()) this.join(v6, IPV6_MULTICAST_GROUP, `::%${name}`);
      return;
    }
    for (const [i, host] of hosts.entries()) {
      const endpoint = { host, ext: extOf(i) };
      const unicast = await this.bind(endpoint, host, port);
      if (isWildcard(host)) {
        if (host === '::') for (const name of ipv6Interfaces()) this.join(unicast, IPV6_MULTICAST_GROUP, `::%${name}`);
        else if (ipv4Multicast) for (const info of interfaceAddresses('IPv4')) this.join(unicast, IPV4_MULTICAST_GROUP, info.address);
        continue;
      }
      // Replies to broadcast and multicast pings leave from the unicast socket, so their source is our address.
      const broadcast = broadcastAddressOf(host);
      if (broadcast) await this.bind(endpoint, broadcast, port, unicast);
      const name = interfaceOf(host);
      if (net.isIPv6(withoutScope(host)) && name) {
        const group = await this.bind(endpoint, `${IPV6_MULTICAST_GROUP}%${name}`, port, unicast);
        this.join(group, IPV6_MULTICAST_GROUP, `::%${name}`);
      } else if (ipv4Multicast && name) {
        const group = await this.bind(endpoint, IPV4_MULTICAST_GROUP, port, unicast);
        this.join(group, IPV4_MULTICAST_GROUP, host);
      }
    }
  }

  /** Joins a multicast group on one interface; an interface that cannot (no multicast) is skipped. */
  private join(socket: dgram.Socket, group: string, on: string): void {
    try {
      socket.addMembership(group, on);
    } catch (error) {
      this.options.logger.debug(`discovery: cannot join ${group} on ${on}: ${(error as Error).message}`);
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

  private bind(endpoint: Endpoint, address: string, port: number, replyVia?: dgram.Socket): Promise<dgram.Socket> {
    const udp6 = address.includes(':');
    const socket = dgram.createSocket({ type: udp6 ? 'udp6' : 'udp4', reuseAddr: true, ...(udp6 ? { ipv6Only: true } : {}) });
    this.sockets.push(socket);
    socket.on('message', (message, remote) => {
      this.answer(endpoint, replyVia ?? socket, message, remote).catch((error: Error) => {
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

  private async answer(endpoint: Endpoint, socket: dgram.Socket, message: Buffer, remote: dgram.RemoteInfo): Promise<void> {
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
    const tcpHost = endpoint.ext ?? (isWildcard(endpoint.host) ? localAddressFacing(remote.address) : withoutScope(endpoint.host));
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
