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
import { DropSummary, broadcastAddresses, type Logger } from '@dispy/protocol/internal';

export interface NodeFinderOptions {
  secret: string;
  /** Local address and port of the discovery socket (port 0: any). */
  bindHost?: string;
  bindPort: number;
  /** The client's own port was not chosen by the user: fall back to any port if it is taken. */
  portIsDefault: boolean;
  nodePort: number;
  clientName: string;
  logger: Logger;
  /** Seconds between repeated pings; default: back off from 0.5 s to 5 s. */
  pingInterval?: number;
  /** An authentic reply from a node at `address` (the datagram's source). */
  onReply: (reply: dispy.DiscoveryReply, address: string) => void;
}

/** How many recent ping nonces a reply may echo. */
const NONCES_KEPT = 256;
/** Nodes whose refusal (or foreign reply) is remembered, so that each is logged once. */
const REFUSERS_KEPT = 1024;
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 5000;

/**
 * Finds nodes: sends authenticated discovery pings to each named host and, for wildcards, to
 * every interface's broadcast address; checks each reply's MAC, that it echoes one of our
 * nonces, and that it is fresh and new (announcements too: a `ReplayGuard`). Pings are padded to
 * MAX_DATAGRAM_BYTES so that a node's reply always fits in the size of its ping. Pings repeat with backoff (or every `pingInterval`) so nodes that start later, or
 * become free later, are found.
 */
export class NodeFinder {
  private socket?: dgram.Socket;
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

  constructor(private readonly options: NodeFinderOptions) {
    this.drops = new DropSummary(options.logger);
  }

  /** Binds the discovery socket. */
  async start(): Promise<void> {
    const { bindHost, bindPort, portIsDefault } = this.options;
    try {
      this.socket = await this.bind(bindHost, bindPort);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || !portIsDefault) throw error;
      // Another cluster in this program (or machine) holds the default port; replies come back
      // to whichever port pinged, so any free port serves.
      this.options.logger.debug(`client port ${bindPort} is in use; discovery uses a free port`);
      this.socket = await this.bind(bindHost, 0);
    }
    this.setActive(this.active);
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
    if (active) {
      this.socket?.ref();
      this.timer?.ref();
    } else {
      this.socket?.unref();
      this.timer?.unref();
    }
  }

  close(): void {
    clearTimeout(this.timer);
    this.socket?.close();
    this.socket = undefined;
    this.drops.close();
  }

  private bind(host: string | undefined, port: number): Promise<dgram.Socket> {
    const socket = dgram.createSocket(host?.includes(':') ? 'udp6' : 'udp4');
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        socket.setBroadcast(true);
        socket.on('message', (message, remote) => this.receive(message, remote));
        socket.on('error', (error) => this.options.logger.warn(`discovery socket: ${error.message}`));
        resolve(socket);
      });
    });
  }

  private tick(): void {
    clearTimeout(this.timer);
    if (!this.socket) return;
    for (const { host, port } of this.targets.values()) this.send(host, port);
    for (const port of this.broadcastPorts) {
      for (const address of broadcastAddresses()) this.send(address, port);
    }
    const interval = this.options.pingInterval;
    const next = interval !== undefined ? interval * 1000 : this.delay;
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    this.timer = setTimeout(() => this.tick(), next);
    if (!this.active) this.timer.unref();
  }

  private send(host: string, port: number): void {
    const nonce = newNonce();
    this.nonces.push(nonce);
    if (this.nonces.length > NONCES_KEPT) this.nonces.shift();
    const ping = sealDatagram(
      this.options.secret,
      { ping: { clientName: this.options.clientName, clientPort: this.socket!.address().port } },
      { nonce, padTo: MAX_DATAGRAM_BYTES },
    );
    this.socket!.send(ping, port, host, (error) => {
      if (error) this.options.logger.debug(`discovery ping to ${host}:${port}: ${error.message}`);
    });
  }

  private receive(message: Buffer, remote: dgram.RemoteInfo): void {
    const opened = openDatagram(this.options.secret, message);
    if (!opened) return;
    const { body } = opened;
    const from = `${remote.address}:${remote.port}`;
    if (body.kind === 'refused') {
      // Unverifiable (the node could not check our MAC, so it does not use the secret): only a
      // refusal of one of our recent pings is believed, and logged once per node.
      const refused = body.refused as dispy.DiscoveryRefused;
      if (!this.knows(refused.nonce) || !this.firstFrom(from)) return;
      this.options.logger.error(`node ${from} refused this cluster: ${refused.reason}`);
      return;
    }
    if (body.kind === 'announce') {
      // A node that has just started (or become free) says so: ask it as any other node.
      const announce = body.announce as dispy.NodeAnnounce;
      if (opened.authentic && opened.version === PROTOCOL_VERSION && this.fresh(body))
        this.send(announce.tcpHost || remote.address, announce.tcpPort || this.options.nodePort);
      return;
    }
    if (body.kind === 'relayedReply') {
      // A node's answer passed on by a dispynetrelay: the node is where the relay heard it, and
      // the relay stays a host to ping (it forgets clients that stop), so it is not marked found.
      const relayed = body.relayedReply as dispy.RelayedReply;
      const reply = relayed.reply as dispy.DiscoveryReply | null;
      if (!opened.authentic || opened.version !== PROTOCOL_VERSION || !reply || !this.knows(reply.nonce) || !this.fresh(body)) return;
      this.options.onReply(reply, relayed.sourceHost || reply.tcpHost);
      return;
    }
    if (body.kind !== 'reply') return;
    if (!opened.authentic) {
      if (this.firstFrom(from)) this.options.logger.error(`node ${from} answered with another secret; not used (the secrets differ)`);
      return;
    }
    const reply = body.reply as dispy.DiscoveryReply;
    if (opened.version !== PROTOCOL_VERSION || !this.knows(reply.nonce) || !this.fresh(body)) return;
    this.options.onReply(reply, remote.address);
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
