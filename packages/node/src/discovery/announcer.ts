import dgram from 'node:dgram';
import net from 'node:net';
import { DEFAULT_CLIENT_PORT, sealDatagram } from '@dispy/protocol';
import {
  IPV4_MULTICAST_GROUP,
  IPV6_MULTICAST_GROUP,
  broadcastAddressOf,
  interfaceAddresses,
  interfaceOf,
  ipv6OnlyInterfaces,
  isWildcard,
  withoutScope,
  type Logger,
} from '@dispy/protocol/internal';

export interface AnnouncerOptions {
  secret: string;
  /** The addresses served (-i); empty: every interface. */
  hosts: string[];
  /** --ext-host, paired with `hosts` by position (one alone stands for every host). */
  extHosts: string[];
  tcpPort: number;
  /** `HOST` or `HOST:PORT` of a client or scheduler to tell directly (--scheduler-host). */
  schedulerHost?: string;
  /** Announce to the IPv4 multicast group instead of by broadcast. */
  ipv4Multicast?: boolean;
  logger: Logger;
}

/** One announcement: where it goes, the address it names (empty: its source), and from which local address (multicast). */
interface Target {
  host: string;
  port: number;
  tcpHost: string;
  via?: string;
}

/**
 * Tells clients that a node is up and free: an authenticated datagram to the client port, on
 * each network the node serves (IPv4: the directed broadcast, or the multicast group with
 * `ipv4Multicast`; IPv6: the link's multicast group), naming the node's address there (or its
 * --ext-host), and to `--scheduler-host`. A node serving loopback only announces to
 * --scheduler-host alone. A client that wants the node pings it as usual, so nodes that start
 * after a client are found at once. It names nothing else of the node (it is read before anyone
 * authenticated); its time and nonce keep it from being replayed.
 */
export class Announcer {
  /** Sockets by family, and IPv4 multicast sockets by the interface address they send from. */
  private readonly sockets = new Map<string, dgram.Socket>();

  constructor(private readonly options: AnnouncerOptions) {}

  /** Where announcements go now (interfaces may come and go). */
  targets(): Target[] {
    const { hosts, extHosts, schedulerHost, ipv4Multicast } = this.options;
    const extOf = (i: number): string | undefined => extHosts[i] ?? (extHosts.length === 1 ? extHosts[0] : undefined);
    const targets: Target[] = [];
    if (schedulerHost) {
      const [host, port] =
        schedulerHost.includes(':') && !schedulerHost.includes('::')
          ? [schedulerHost.slice(0, schedulerHost.lastIndexOf(':')), Number(schedulerHost.slice(schedulerHost.lastIndexOf(':') + 1))]
          : [schedulerHost.replace(/^\[(.*)\]$/, '$1'), DEFAULT_CLIENT_PORT];
      const first = hosts[0];
      targets.push({ host, port, tcpHost: extOf(0) ?? (first && !isWildcard(first) ? withoutScope(first) : '') });
    }
    const v4 = (address: string, tcpHost: string): void => {
      if (ipv4Multicast) targets.push({ host: IPV4_MULTICAST_GROUP, port: DEFAULT_CLIENT_PORT, tcpHost, via: address });
      else {
        const broadcast = broadcastAddressOf(address);
        if (broadcast) targets.push({ host: broadcast, port: DEFAULT_CLIENT_PORT, tcpHost });
      }
    };
    const v6 = (name: string, tcpHost: string): void => {
      targets.push({ host: `${IPV6_MULTICAST_GROUP}%${name}`, port: DEFAULT_CLIENT_PORT, tcpHost });
    };
    const served = hosts.length > 0 ? hosts : ['0.0.0.0', '::'];
    for (const [i, host] of served.entries()) {
      const ext = extOf(i) ?? '';
      if (host === '0.0.0.0' || host === '') for (const info of interfaceAddresses('IPv4')) v4(info.address, ext);
      else if (host === '::') for (const name of ipv6OnlyInterfaces()) v6(name, ext);
      else if (net.isIPv6(withoutScope(host))) {
        const name = interfaceOf(host);
        if (name) v6(name, ext || withoutScope(host));
      } else if (interfaceOf(host)) v4(host, ext || host);
    }
    return targets;
  }

  announce(): void {
    const { secret, tcpPort, logger } = this.options;
    for (const { host, port, tcpHost, via } of this.targets()) {
      const socket = this.socketFor(host, via);
      if (!socket) continue;
      // One nonce per target: a client reached on two of its networks drops the second as replayed.
      const datagram = sealDatagram(secret, { announce: { tcpHost, tcpPort } });
      socket.send(datagram, port, host, (error) => {
        if (error) logger.debug(`announcement to ${host}:${port}: ${error.message}`);
      });
    }
  }

  close(): void {
    for (const socket of this.sockets.values()) socket.close();
    this.sockets.clear();
  }

  private socketFor(host: string, via?: string): dgram.Socket | undefined {
    const udp6 = net.isIPv6(withoutScope(host));
    const key = via ?? (udp6 ? 'udp6' : 'udp4');
    let socket = this.sockets.get(key);
    if (socket) return socket;
    try {
      socket = dgram.createSocket({ type: udp6 ? 'udp6' : 'udp4', ...(udp6 ? { ipv6Only: true } : {}) });
    } catch (error) {
      this.options.logger.debug(`announcement: ${(error as Error).message}`);
      return undefined;
    }
    socket.on('error', (error) => this.options.logger.debug(`announcement: ${error.message}`));
    const opened = socket;
    // A multicast announcement leaves by the interface of `via`: its own socket, bound there.
    opened.bind(0, via, () => {
      try {
        opened.setBroadcast(true);
        if (via) opened.setMulticastInterface(via);
      } catch (error) {
        this.options.logger.debug(`announcement: ${(error as Error).message}`);
      }
    });
    opened.unref();
    this.sockets.set(key, opened);
    return opened;
  }
}
