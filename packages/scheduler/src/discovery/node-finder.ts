import dgram from 'node:dgram';
import {
  MAX_DATAGRAM_BYTES,
  PROTOCOL_VERSION,
  ReplayGuard,
  newNonce,
  openDatagram,
  sealDatagram,
  type DatagramVerdict,
  type dispy,
} from '@dispy/protocol';
import net from 'node:net';
import {
  DropSummary,
  IPV4_MULTICAST_GROUP,
  IPV6_MULTICAST_GROUP,
  broadcastAddressOf,
  broadcastAddresses,
  interfaceAddresses,
  interfaceOf,
  ipv6OnlyInterfaces,
  withScopeOf,
  withoutScope,
  type Logger,
} from '@dispy/protocol/internal';

export interface NodeFinderOptions {
  secret: string;
  /**
   * Local addresses of the discovery sockets (the client's `ipAddr`), one socket each; pings go
   * out on their networks only. Default: every interface, IPv4 (0.0.0.0) and IPv6 (::, where the
   * host has it).
   */
  bindHost?: string | string[];
  /** Port of the discovery sockets (0: any). */
  bindPort: number;
  /** The client's own port was not chosen by the user: fall back to any port if it is taken. */
  portIsDefault: boolean;
  nodePort: number;
  clientName: string;
  logger: Logger;
  /** Seconds between repeated pings; default: back off from 0.5 s to 5 s. */
  pingInterval?: number;
  /** Ping the IPv4 multicast group (IPV4_MULTICAST_GROUP) instead of broadcasting, and hear announcements there (dispy's `ipv4_udp_multicast`). */
  ipv4Multicast?: boolean;
  /** An authentic reply from a node at `address` (the datagram's source). */
  onReply: (reply: dispy.DiscoveryReply, address: string) => void;
  /**
   * Whether the scheduler has a node now: while it has none, no node answered, and jobs wait
   * (`setActive(true)`), `noNodeWarning` seconds on, the finder warns once, naming what it pinged.
   */
  hasNodes?: () => boolean;
  /** Seconds with jobs waiting and no node before the warning "no node found" (default 5; 0: never). */
  noNodeWarning?: number;
}

/** How many recent ping nonces a reply may echo. */
const NONCES_KEPT = 256;
/** Nodes whose refusal (or foreign reply) is remembered, so that each is logged once. */
const REFUSERS_KEPT = 1024;
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 5000;
/** Default of `noNodeWarning`, in seconds. */
const NO_NODE_WARNING_SECONDS = 5;

/** A discovery socket and the address it was bound to (a wildcard: every interface of its family). */
interface Bound {
  socket: dgram.Socket;
  host: string;
  udp6: boolean;
}

/**
 * Finds nodes: sends authenticated discovery pings to each named host and, for wildcards, to
 * each network of its sockets: an IPv4 interface's directed broadcast address (or the IPv4
 * multicast group, with `ipv4Multicast`), an IPv6 interface's link multicast group. A reply
 * that names a link-local address is reached with the scope it came in on. Checks each reply's MAC, that it echoes one of our
 * nonces, and that it is fresh and new (announcements too: a `ReplayGuard`). Pings are padded to
 * MAX_DATAGRAM_BYTES so that a node's reply always fits in the size of its ping. Pings repeat with backoff (or every `pingInterval`) so nodes that start later, or
 * become free later, are found.
 */
export class NodeFinder {
  private readonly sockets: Bound[] = [];
  private readonly nonces: Buffer[] = [];
  /** Hosts to ping by unicast, keyed host:port. */
  private readonly targets = new Map<string, { host: string; port: number }>();
  /** Ports to broadcast pings to (wildcard node patterns); empty: no broadcast. */
  private readonly broadcastPorts = new Set<number>();
  private timer?: NodeJS.Timeout;
  private delay = FIRST_DELAY_MS;
  private active = true;
  private readonly refusedBy = new Set<string>();
  private readonly guard = new ReplayGuard();
  private readonly drops: DropSummary;
  /** Discovery rounds sent (for the debug log). */
  private rounds = 0;
  /** Where the last round's pings went (`host:port`, and from which local address for broadcasts). */
  private lastRound: string[] = [];
  /** Authentic replies heard (directly or relayed). */
  private repliesHeard = 0;
  private noNodeTimer?: NodeJS.Timeout;
  private toldNoNode = false;
  /** Whether jobs wait: `setActive(true)` was the last word (the finder is active before, to find nodes, but no job waits yet). */
  private jobsWait = false;

  constructor(private readonly options: NodeFinderOptions) {
    this.drops = new DropSummary(options.logger);
  }

  /** Binds the discovery sockets. */
  async start(): Promise<void> {
    const { bindHost, bindPort } = this.options;
    const named = [bindHost ?? []].flat();
    let port = bindPort;
    for (const host of named.length > 0 ? named : ['0.0.0.0', '::']) {
      const implicit = named.length === 0 && host === '::';
      try {
        const bound = await this.bindWithFallback(host, port);
        // Every socket on one port (the first's, if it fell back to any port): nodes see one client port.
        port = bound.socket.address().port;
        this.sockets.push(bound);
      } catch (error) {
        // IPv6 where the host has it: a host without IPv6 pings by IPv4 alone.
        if (!implicit) throw error;
        this.options.logger.debug(`discovery on IPv6: ${(error as Error).message}`);
      }
    }
    this.applyActive();
    this.watchForNoNode(this.jobsWait);
  }

  private async bindWithFallback(host: string, port: number): Promise<Bound> {
    try {
      return await this.bind(host, port);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || !this.options.portIsDefault) throw error;
      // Another cluster in this program (or machine) holds the default port; replies come back
      // to whichever port pinged, so any free port serves.
      this.options.logger.debug(`client port ${port} is in use; discovery uses a free port`);
      return await this.bind(host, 0);
    }
  }

  /** Look for nodes at `host` (an address), on `port` (default: the cluster's node port). */
  addHost(host: string, port = this.options.nodePort): void {
    this.targets.set(`${host}:${port}`, { host, port });
  }

  /** Stop pinging `host` (it is served), or resume (it went away). */
  found(host: string, isFound: boolean, port = this.options.nodePort): void {
    const key = `${host}:${port}`;
    if (isFound) this.targets.delete(key);
    else this.targets.set(key, { host, port });
  }

  /** Also broadcast pings, to `port` (for wildcard node patterns). */
  enableBroadcast(port = this.options.nodePort): void {
    this.broadcastPorts.add(port);
  }

  /** Sends a round of pings now and restarts the backoff. */
  pingNow(): void {
    this.delay = FIRST_DELAY_MS;
    this.tick();
  }

  /** Keeps the process alive (jobs are waiting) or lets it exit (nothing to wait for). */
  setActive(active: boolean): void {
    this.active = active;
    this.jobsWait = active;
    this.applyActive();
    this.watchForNoNode(active);
  }

  /** Refs or unrefs the sockets and the timer as `active` says. */
  private applyActive(): void {
    const { active } = this;
    for (const { socket } of this.sockets) {
      if (active) socket.ref();
      else socket.unref();
    }
    if (active) this.timer?.ref();
    else this.timer?.unref();
  }

  close(): void {
    clearTimeout(this.timer);
    clearTimeout(this.noNodeTimer);
    this.noNodeTimer = undefined;
    for (const { socket } of this.sockets.splice(0)) socket.close();
    this.drops.close();
  }

  private bind(host: string, port: number): Promise<Bound> {
    const udp6 = net.isIPv6(withoutScope(host));
    const socket = dgram.createSocket({ type: udp6 ? 'udp6' : 'udp4', ...(udp6 ? { ipv6Only: true } : {}) });
    return new Promise((resolve, reject) => {
      const failed = (error: Error): void => {
        socket.close();
        reject(error);
      };
      socket.once('error', failed);
      socket.bind(port, host, () => {
        socket.off('error', failed);
        socket.on('message', (message, remote) => this.receive(message, remote));
        socket.on('error', (error) => this.options.logger.warn(`discovery socket: ${error.message}`));
        try {
          socket.setBroadcast(true);
          this.joinGroups(socket, host, udp6);
        } catch (error) {
          this.options.logger.debug(`discovery socket ${host}: ${(error as Error).message}`);
        }
        resolve({ socket, host, udp6 });
      });
    });
  }

  /** Hears announcements sent to the multicast groups, on the interfaces of this socket. */
  private joinGroups(socket: dgram.Socket, host: string, udp6: boolean): void {
    const join = (group: string, on: string): void => {
      try {
        socket.addMembership(group, on);
      } catch (error) {
        this.options.logger.debug(`discovery: cannot join ${group} on ${on}: ${(error as Error).message}`);
      }
    };
    if (udp6) {
      const names = host === '::' ? ipv6OnlyInterfaces() : [interfaceOf(host)].filter((name) => name !== undefined);
      for (const name of names) join(IPV6_MULTICAST_GROUP, `::%${name}`);
    } else if (this.options.ipv4Multicast) {
      const addresses = host === '0.0.0.0' ? interfaceAddresses('IPv4').map((info) => info.address) : interfaceOf(host) ? [host] : [];
      for (const address of addresses) join(IPV4_MULTICAST_GROUP, address);
    }
  }

  /**
   * While jobs wait, arms the warning "no node found" (once, `noNodeWarning` seconds on; armed by
   * `start` when jobs were waiting before the sockets were bound); when none wait, disarms it.
   * Said once per finder; not armed again after it was said.
   */
  private watchForNoNode(active: boolean): void {
    if (!active) {
      clearTimeout(this.noNodeTimer);
      this.noNodeTimer = undefined;
      return;
    }
    const seconds = this.options.noNodeWarning ?? NO_NODE_WARNING_SECONDS;
    if (this.toldNoNode || this.noNodeTimer || seconds <= 0 || this.sockets.length === 0) return;
    this.noNodeTimer = setTimeout(() => {
      this.noNodeTimer = undefined;
      // A node that answered and was not used says why elsewhere (busy, refused, its setup failed).
      if (!this.active || this.options.hasNodes?.() || this.repliesHeard > 0) return;
      this.toldNoNode = true;
      this.options.logger.warn(this.noNodeMessage(seconds));
    }, seconds * 1000);
    this.noNodeTimer.unref();
  }

  /** "No node found": what was pinged, from where, what was heard, and the likely fixes. */
  private noNodeMessage(seconds: number): string {
    const from = this.sockets.map(
      ({ socket, host }) => (net.isIPv6(withoutScope(host)) ? `[${host}]` : host) + `:${socket.address().port}`,
    );
    const pinged = this.lastRound.length > 0 ? this.lastRound.join(', ') : 'nothing (no address to ping, and no network to broadcast on)';
    return (
      `no node found in ${seconds} s while jobs wait: no node answered. ` +
      `In ${this.rounds} round${this.rounds === 1 ? '' : 's'}, discovery pinged ${pinged}, from ${from.join(' and ')}. ` +
      'Broadcast does not reach a node that listens on a loopback address (127.x.x.x, ::1) nor one on another network. ' +
      "Likely fixes: start the node on an address of a network interface (dispynode -i ADDR); name the nodes in `nodes` (for a node on this machine: nodes: ['127.0.0.1']); " +
      `or start dispynode with --scheduler-host ${this.announceHost(from)} so that it announces itself to this client. Loglevel debug shows each round and each reply`
    );
  }

  /** The `--scheduler-host` a node would give to reach this client: the first socket's address (or this host) and port. */
  private announceHost(from: string[]): string {
    const first = this.sockets[0];
    if (!first) return 'THIS_HOST';
    const wildcard = first.host === '0.0.0.0' || first.host === '::';
    return wildcard ? `THIS_HOST:${first.socket.address().port}` : (from[0] ?? 'THIS_HOST');
  }

  private tick(): void {
    clearTimeout(this.timer);
    if (this.sockets.length === 0) return;
    const round: string[] = [];
    for (const { host, port } of this.targets.values()) {
      const udp6 = net.isIPv6(withoutScope(host));
      const bound = this.sockets.find((candidate) => candidate.udp6 === udp6);
      if (bound) {
        this.send(bound.socket, host, port);
        round.push(`${udp6 ? `[${host}]` : host}:${port}`);
      } else this.options.logger.debug(`discovery: no ${udp6 ? 'IPv6' : 'IPv4'} socket to ping ${host}`);
    }
    for (const port of this.broadcastPorts) {
      for (const bound of this.sockets) {
        if (!bound.udp6 && this.options.ipv4Multicast) {
          this.multicast4(bound, port);
          round.push(`${IPV4_MULTICAST_GROUP}:${port} (multicast from ${bound.host})`);
          continue;
        }
        const targets = this.broadcastTargets(bound);
        for (const target of targets) this.send(bound.socket, target, port, bound.host);
        if (targets.length > 0)
          round.push(
            `${targets.map((target) => (bound.udp6 ? `[${target}]` : target)).join(', ')} port ${port} (broadcast from ${bound.host})`,
          );
        else this.options.logger.debug(`discovery: no network to broadcast on from ${bound.host} (a loopback address has none)`);
      }
    }
    this.rounds++;
    this.lastRound = round;
    const interval = this.options.pingInterval;
    const next = interval !== undefined ? interval * 1000 : this.delay;
    this.options.logger.debug(
      `discovery round ${this.rounds}: pinged ${round.length > 0 ? round.join(', ') : 'nothing'}; next round in ${(next / 1000).toFixed(1)} s`,
    );
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    this.timer = setTimeout(() => this.tick(), next);
    if (!this.active) this.timer.unref();
  }

  /** Where a socket's broadcast pings go: each of its networks' broadcast address or multicast group. */
  private broadcastTargets({ host, udp6 }: Bound): string[] {
    if (udp6) {
      const names = host === '::' ? ipv6OnlyInterfaces() : [interfaceOf(host)].filter((name) => name !== undefined);
      return names.map((name) => `${IPV6_MULTICAST_GROUP}%${name}`);
    }
    if (host === '0.0.0.0') return broadcastAddresses();
    const broadcast = broadcastAddressOf(host);
    return broadcast ? [broadcast] : [];
  }

  /**
   * Pings the IPv4 multicast group on each interface of the socket, one after the other: the
   * interface a multicast leaves by is the socket's, set before each send.
   */
  private multicast4({ socket, host }: Bound, port: number): void {
    const addresses = host === '0.0.0.0' ? interfaceAddresses('IPv4').map((info) => info.address) : [host];
    const next = (i: number): void => {
      const address = addresses[i];
      if (address === undefined || !this.sockets.some((bound) => bound.socket === socket)) return;
      try {
        socket.setMulticastInterface(address);
      } catch (error) {
        this.options.logger.debug(`discovery: no multicast from ${address}: ${(error as Error).message}`);
        next(i + 1);
        return;
      }
      this.send(socket, IPV4_MULTICAST_GROUP, port, address, () => next(i + 1));
    };
    next(0);
  }

  private send(socket: dgram.Socket, host: string, port: number, via?: string, sent?: () => void): void {
    const nonce = newNonce();
    this.nonces.push(nonce);
    if (this.nonces.length > NONCES_KEPT) this.nonces.shift();
    const ping = sealDatagram(
      this.options.secret,
      { ping: { clientName: this.options.clientName, clientPort: socket.address().port } },
      { nonce, padTo: MAX_DATAGRAM_BYTES },
    );
    socket.send(ping, port, host, (error) => {
      if (error) this.options.logger.debug(`discovery ping to ${host}:${port}${via ? ` from ${via}` : ''}: ${error.message}`);
      sent?.();
    });
  }

  private receive(message: Buffer, remote: dgram.RemoteInfo): void {
    const opened = openDatagram(this.options.secret, message);
    const from = `${remote.address}:${remote.port}`;
    const { logger } = this.options;
    if (!opened) {
      logger.debug(`discovery: a datagram from ${from} is not one of dispy's (or is damaged); ignored`);
      return;
    }
    const { body } = opened;
    if (body.kind === 'refused') {
      // Unverifiable (the node could not check our MAC, so it does not use the secret): only a
      // refusal of one of our recent pings is believed, and logged once per node.
      const refused = body.refused as dispy.DiscoveryRefused;
      if (!this.knows(refused.nonce)) {
        logger.debug(`discovery: node ${from} refused a ping that is not one of ours (${refused.reason}); ignored`);
        return;
      }
      logger.debug(`discovery: node ${from} refused this cluster: ${refused.reason}`);
      if (!this.firstFrom(from)) return;
      logger.error(`node ${from} refused this cluster: ${refused.reason}`);
      return;
    }
    if (body.kind === 'announce') {
      // A node that has just started (or become free) says so: ask it as any other node.
      const announce = body.announce as dispy.NodeAnnounce;
      if (opened.authentic && opened.version === PROTOCOL_VERSION && this.fresh(body))
        this.answerAnnounce(withScopeOf(announce.tcpHost || remote.address, remote.address), announce.tcpPort || this.options.nodePort);
      return;
    }
    if (body.kind === 'relayedReply') {
      // A node's answer passed on by a dispynetrelay: the node is where the relay heard it, and
      // the relay stays a host to ping (it forgets clients that stop), so it is not marked found.
      const relayed = body.relayedReply as dispy.RelayedReply;
      const reply = relayed.reply as dispy.DiscoveryReply | null;
      const why = this.refusal(opened.authentic, opened.version, reply?.nonce, body);
      if (why || !reply) {
        logger.debug(`discovery: relayed reply from ${from} not used: ${why ?? 'it holds no reply'}`);
        return;
      }
      this.heard(reply, `${relayed.sourceHost || reply.tcpHost} (relayed by ${from})`);
      this.options.onReply(reply, relayed.sourceHost || reply.tcpHost);
      return;
    }
    if (body.kind === undefined) {
      // Sealed under another key: nothing of it can be read.
      logger.debug(`discovery: a datagram from ${from} not used: sealed with another secret (the secrets differ)`);
      return;
    }
    if (body.kind !== 'reply') {
      logger.debug(`discovery: a datagram from ${from} not used: ${body.kind} is not for a client`);
      return;
    }
    if (!opened.authentic) {
      logger.debug(`discovery: reply from ${from} not used: signed with another secret`);
      if (this.firstFrom(from)) logger.error(`node ${from} answered with another secret; not used (the secrets differ)`);
      return;
    }
    const reply = body.reply as dispy.DiscoveryReply;
    const why = this.refusal(true, opened.version, reply.nonce, body);
    if (why) {
      logger.debug(`discovery: reply from ${from} not used: ${why}`);
      return;
    }
    // A link-local address is reached through the interface the reply came in on: its scope here.
    reply.tcpHost = withScopeOf(reply.tcpHost, remote.address);
    this.heard(reply, from);
    this.options.onReply(reply, remote.address);
  }

  /** Why an authentic-looking reply is not used (undefined: it is used); a stale or replayed one is counted. */
  private refusal(authentic: boolean, version: number, nonce: Uint8Array | undefined, body: dispy.DatagramBody): string | undefined {
    if (!authentic) return 'signed with another secret';
    if (version !== PROTOCOL_VERSION) return `protocol version ${version}, not ${PROTOCOL_VERSION}`;
    if (!nonce || !this.knows(nonce)) return 'it answers no recent ping of this client';
    if (!this.fresh(body)) return 'stale or replayed';
    return undefined;
  }

  /** An authentic reply is used: counted, and logged at debug. */
  private heard(reply: dispy.DiscoveryReply, from: string): void {
    this.repliesHeard++;
    this.options.logger.debug(
      `discovery: reply from ${from}: node ${reply.name} at ${reply.tcpHost}:${reply.tcpPort}, ${reply.cpus} of ${reply.totalCpus || reply.cpus} CPUs free` +
        (reply.busy ? ', busy' : ''),
    );
  }

  /** Pings a node that announced itself, from a socket of its address's family. */
  private answerAnnounce(host: string, port: number): void {
    const udp6 = net.isIPv6(withoutScope(host));
    const bound = this.sockets.find((candidate) => candidate.udp6 === udp6);
    if (bound) this.send(bound.socket, host, port);
  }

  /** An authentic datagram is fresh and new; else it is counted for the summary. */
  private fresh(body: dispy.DatagramBody): boolean {
    const verdict: DatagramVerdict = this.guard.check(body);
    if (verdict === 'fresh') return true;
    this.drops.count(verdict === 'overflow' ? 'over the replay cache' : verdict);
    return false;
  }

  /** The first word from `from` that is worth logging (a bounded memory of who refused us). */
  private firstFrom(from: string): boolean {
    if (this.refusedBy.has(from) || this.refusedBy.size >= REFUSERS_KEPT) return false;
    this.refusedBy.add(from);
    return true;
  }

  private knows(nonce: Uint8Array): boolean {
    return this.nonces.some((known) => known.equals(nonce));
  }
}
