import type dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import {
  NONCE_BYTES,
  PROTOCOL_VERSION,
  ReplayGuard,
  openDatagram,
  sealDatagram,
  type DatagramBody,
  type DatagramVerdict,
  type OpenedDatagram,
  type dispy,
} from '@dispy/protocol';
import { DropSummary, broadcastAddressOf, broadcastAddresses, createLogger, isWildcard, type Logger } from '@dispy/protocol/internal';
import { ExpiringTable } from './expiring-table.js';
import type { HostPort } from './host-port.js';
import { relaySettings, type DispyNetRelayOptions, type RelaySettings } from './net-relay-options.js';
import { bindUdp, hostPort } from './udp-socket.js';

/** How long a ping passed on waits for the nodes' answers, in ms. */
export const PING_ANSWER_MS = 30_000;
/** Clients remembered at most; one more forgets the one heard from longest ago. */
export const MAX_CLIENTS = 1024;
/** Nodes that announced themselves remembered at most. */
export const MAX_ANNOUNCED_NODES = 4096;
/** Pings passed on whose answers are awaited, at most. */
const MAX_PENDING_PINGS = 8192;
/** A source is told `refused` at most once in this many ms (as a node does). */
const REFUSAL_INTERVAL_MS = 10_000;
/** How often `schedulerNodes` are told of the relay again, in ms. */
export const SCHEDULER_NODES_INTERVAL_MS = 60_000;

const VERDICTS: Record<Exclude<DatagramVerdict, 'fresh'>, string> = {
  stale: 'stale',
  replayed: 'replayed',
  malformed: 'malformed',
  overflow: 'over the replay cache',
};

interface Client {
  address: string;
  port: number;
  /** The socket it pinged: answers leave from the address it used. */
  via: dgram.Socket;
}

interface PendingPing {
  client: string;
  /** The ping's size: nothing passed on for it is larger. */
  size: number;
}

/** A socket that pings the relay's networks; the nodes answer to it. */
interface NodeSide {
  socket: dgram.Socket;
  family: 4 | 6;
  /** The directed broadcast addresses it pings (computed at each ping when it serves every interface). */
  broadcasts: () => string[];
}

/** What `status()` tells. */
export interface NetRelayStatus {
  /** Clients (and schedulers) remembered now, with the seconds left before they are forgotten unless they ping again. */
  clients: Array<{ host: string; port: number; expiresIn: number }>;
  /** Nodes that announced themselves (pinged by address from then on), with the seconds left. */
  announcedNodes: Array<{ host: string; port: number; expiresIn: number }>;
  /** Authentic, fresh pings passed on to the relay's networks. */
  pingsRelayed: number;
  /** Nodes' answers passed back to clients. */
  repliesRelayed: number;
  /** Nodes' announcements that the relay told its clients of. */
  announcementsRelayed: number;
  /** Datagrams dropped: not authentic, stale, replayed, of another version, answering no ping passed on, too large. */
  dropped: number;
}

/**
 * dispynetrelay: makes nodes on a remote network, beyond the reach of a client's broadcast,
 * discoverable by clients and dispyschedulers elsewhere. A client lists the relay's host in `nodes`
 * (and a pattern matching the remote nodes); its authenticated ping to the relay is passed on, as
 * it is, to the relay's networks (their directed broadcast addresses, `nodes`, and nodes that
 * announced themselves); the nodes answer the relay, which checks each answer and passes it back to
 * the client that pinged, sealed again as a `RelayedReply` naming the node's address. The client
 * then connects to the node directly over TCP: the nodes must be reachable from the clients.
 *
 * Every client is remembered (for `clientTtl` after its last ping), so several clients and
 * schedulers can use one relay at once; a node that announces itself later on the relay's network
 * is told to each of them, as an announcement of the relay, and they ping it again.
 *
 * Nothing that does not prove the secret is passed on; stale and replayed datagrams are dropped
 * (a `ReplayGuard`) and summed up in the log once a minute. No datagram sent is larger than 1,200
 * bytes, and no answer passed back is larger than the ping it answers.
 */
export class DispyNetRelay {
  readonly logger: Logger;
  private readonly settings: RelaySettings;
  private readonly guard = new ReplayGuard();
  private readonly drops: DropSummary;
  private readonly clients: ExpiringTable<Client>;
  private readonly pending = new ExpiringTable<PendingPing>(PING_ANSWER_MS, MAX_PENDING_PINGS);
  private readonly announced: ExpiringTable<HostPort>;
  private readonly refusedAt = new ExpiringTable<true>(REFUSAL_INTERVAL_MS, 1024);
  private readonly clientSockets: dgram.Socket[] = [];
  private readonly announceSockets: dgram.Socket[] = [];
  private readonly nodeSides: NodeSide[] = [];
  /** Where our own sockets are bound: datagrams from them are our own, heard back. */
  private readonly ownEndpoints: HostPort[] = [];
  private readonly counts = { pingsRelayed: 0, repliesRelayed: 0, announcementsRelayed: 0, dropped: 0 };
  private timer?: NodeJS.Timeout;
  private state: 'new' | 'starting' | 'started' | 'closed' = 'new';

  /** @throws OptionError when an option is wrong */
  constructor(options: DispyNetRelayOptions = {}) {
    this.settings = relaySettings(options);
    this.logger = createLogger('dispynetrelay', this.settings.loglevel);
    this.drops = new DropSummary(this.logger);
    this.clients = new ExpiringTable<Client>(this.settings.clientTtlMs, MAX_CLIENTS);
    this.announced = new ExpiringTable<HostPort>(this.settings.clientTtlMs, MAX_ANNOUNCED_NODES);
  }

  /**
   * Binds the sockets and tells `schedulerNodes` of the relay; logs one line with the addresses.
   * @throws DispyError (code `DISPY_ERR_START`) naming the address that could not be bound (a
   * dispynode on this host holds the node port: give the relay another with `relayPort`); what was
   * bound is closed again
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('dispynetrelay: start() may be called once');
    this.state = 'starting';
    const { hosts, relayPort, schedulerPort } = this.settings;
    try {
      for (const host of hosts.length > 0 ? hosts : ['0.0.0.0']) {
        // Without SO_REUSEADDR: a dispynode holding this port would get the pings meant for us.
        const client = await bindUdp(host, relayPort, false, 'a dispynode on this host? give the relay its own port with --relay-port');
        this.clientSockets.push(client);
        client.on('message', (message, remote) => this.onPing(client, message, remote));
        // Shared with a client or dispyscheduler on this host, which hear the same announcements.
        const announcements = await bindUdp(host, schedulerPort, true, 'announcements');
        this.announceSockets.push(announcements);
        const broadcast = isWildcard(host) ? undefined : broadcastAddressOf(host);
        if (broadcast) {
          // A socket bound to a unicast address hears no broadcasts (Linux): one on the broadcast address does.
          const heard = await bindUdp(broadcast, schedulerPort, true, 'announcements');
          this.announceSockets.push(heard);
        }
        const nodeSide = await bindUdp(host, 0, false, 'pings to nodes');
        this.nodeSides.push({
          socket: nodeSide,
          family: net.isIPv6(host) ? 6 : 4,
          broadcasts: isWildcard(host) ? () => broadcastAddresses() : () => (broadcast ? [broadcast] : []),
        });
        nodeSide.on('message', (message, remote) => this.onNodeAnswer(message, remote));
      }
    } catch (error) {
      this.state = 'closed';
      await this.closeSockets();
      throw error;
    }
    for (const socket of [...this.clientSockets, ...this.nodeSides.map((side) => side.socket)]) {
      this.ownEndpoints.push({ host: socket.address().address, port: socket.address().port });
    }
    for (const socket of this.announceSockets) socket.on('message', (message, remote) => this.onAnnounce(message, remote));
    for (const socket of [...this.clientSockets, ...this.announceSockets, ...this.nodeSides.map((side) => side.socket)]) {
      socket.on('error', (error) => this.logger.warn(`socket: ${error.message}`));
    }
    this.state = 'started';
    this.tellSchedulerNodes();
    if (this.settings.schedulerNodes.length > 0) {
      this.timer = setInterval(() => this.tellSchedulerNodes(), SCHEDULER_NODES_INTERVAL_MS);
      this.timer.unref();
    }
    const pinged = [
      ...this.nodeSides.flatMap((side) => side.broadcasts()).map((address) => hostPort(address, this.settings.nodePort)),
      ...this.settings.nodes.map(({ host, port }) => hostPort(host, port)),
    ];
    this.logger.info(
      `relaying pings heard on ${this.relayAddresses.map(({ host, port }) => hostPort(host, port)).join(', ')} (UDP) ` +
        `to nodes at ${pinged.length > 0 ? pinged.join(', ') : '(none yet: only nodes that announce themselves)'}; ` +
        `announcements heard on port ${this.announceSockets[0]!.address().port}` +
        (this.settings.secret === '' ? '; no secret: anyone who can reach it can use it' : ''),
    );
  }

  /** Where clients' pings are heard (the port is the bound one when `relayPort` was 0). */
  get relayAddresses(): HostPort[] {
    return this.clientSockets.map((socket) => ({ host: socket.address().address, port: socket.address().port }));
  }

  /** Where nodes' announcements are heard. */
  get announceAddresses(): HostPort[] {
    return this.announceSockets.map((socket) => ({ host: socket.address().address, port: socket.address().port }));
  }

  status(): NetRelayStatus {
    const list = (table: ExpiringTable<{ address?: string; host?: string; port: number }>) =>
      [...table.live()].map(([, value, left]) => ({
        host: value.address ?? value.host ?? '',
        port: value.port,
        expiresIn: Math.ceil(left / 1000),
      }));
    return { clients: list(this.clients), announcedNodes: list(this.announced), ...this.counts };
  }

  /** Closes every socket; the relay forgets its clients. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearInterval(this.timer);
    this.drops.close();
    this.clients.clear();
    this.pending.clear();
    this.announced.clear();
    await this.closeSockets();
  }

  /** Closes every socket; resolves once all are closed. */
  private closeSockets(): Promise<void> {
    const sockets = [...this.clientSockets, ...this.announceSockets, ...this.nodeSides.map((side) => side.socket)];
    this.clientSockets.length = 0;
    this.announceSockets.length = 0;
    this.nodeSides.length = 0;
    return Promise.all(
      sockets.map(
        (socket) =>
          new Promise<void>((resolve) => {
            try {
              socket.close(resolve);
            } catch {
              resolve(); // closed already
            }
          }),
      ),
    ).then(() => undefined);
  }

  /** A client's ping: checked, the client remembered, and the ping passed on, as it is, to the nodes. */
  private onPing(via: dgram.Socket, message: Buffer, remote: dgram.RemoteInfo): void {
    if (this.fromSelf(remote)) return;
    const opened = openDatagram(this.settings.secret, message);
    if (!opened) return;
    // A datagram we cannot open (another secret) has no kind: it is taken for the ping it means to be.
    const unreadable = !opened.authentic && opened.body.kind === undefined;
    if (opened.body.kind !== 'ping' && !unreadable) return;
    if (opened.version !== PROTOCOL_VERSION) {
      this.drop('of another protocol version (refused)');
      this.refuse(via, remote, message, opened.body.nonce, `protocol version ${opened.version} is not ${PROTOCOL_VERSION}`);
      return;
    }
    if (!opened.authentic) {
      this.drop('signed with another secret (refused)');
      this.refuse(via, remote, message, opened.body.nonce, 'the secrets differ');
      return;
    }
    if (!this.fresh(opened.body)) return;
    const key = hostPort(remote.address, remote.port);
    if (this.clients.get(key) === undefined) this.logger.info(`client ${key} uses this relay`);
    this.clients.set(key, { address: remote.address, port: remote.port, via });
    this.pending.set(hex(opened.body.nonce), { client: key, size: message.length });
    this.counts.pingsRelayed++;
    for (const { socket, family, broadcasts } of this.nodeSides) {
      const targets = broadcasts().map((host) => ({ host, port: this.settings.nodePort }));
      if (socket === this.unicastSide(family)?.socket) targets.push(...this.unicastTargets(family));
      for (const { host, port } of targets) {
        socket.send(message, port, host, (error) => {
          if (error) this.logger.debug(`ping to ${hostPort(host, port)}: ${error.message}`);
        });
      }
    }
  }

  /** A node's answer to a ping passed on: checked, and passed back to the client that pinged. */
  private onNodeAnswer(message: Buffer, remote: dgram.RemoteInfo): void {
    const opened = openDatagram(this.settings.secret, message);
    if (!opened) return;
    // Another relay on our network may have heard our ping (broadcast to its port) and passed it
    // on too: a node that heard its copy first answers it, and it passes the answer to us.
    const relayed = opened.body.kind === 'relayedReply' ? (opened.body.relayedReply as dispy.RelayedReply) : undefined;
    if (!this.checked(opened, relayed ? 'relayedReply' : 'reply')) return;
    const reply = (relayed ? relayed.reply : opened.body.reply) as dispy.DiscoveryReply | null;
    if (!reply) return;
    const sourceHost = relayed?.sourceHost || remote.address;
    const pending = this.pending.get(hex(reply.nonce));
    const client = pending && this.clients.get(pending.client);
    if (!pending || !client) {
      this.drop('answering no ping passed on');
      return;
    }
    let answer: Buffer;
    try {
      answer = sealDatagram(this.settings.secret, { relayedReply: { reply, sourceHost } });
    } catch {
      answer = Buffer.alloc(pending.size + 1);
    }
    if (answer.length > pending.size) {
      this.drop('too large to pass on');
      return;
    }
    this.counts.repliesRelayed++;
    this.send(client.via, answer, client.address, client.port);
  }

  /** A node on our network announces itself: remembered, and each client told to ping the relay again. */
  private onAnnounce(message: Buffer, remote: dgram.RemoteInfo): void {
    if (this.fromSelf(remote)) return;
    const opened = openDatagram(this.settings.secret, message);
    if (!opened || !this.checked(opened, 'announce')) return;
    const announce = opened.body.announce as dispy.NodeAnnounce;
    const node = { host: announce.tcpHost || remote.address, port: announce.tcpPort || this.settings.nodePort };
    const key = hostPort(node.host, node.port);
    if (this.announced.get(key) === undefined) this.logger.info(`node ${key} announced itself; telling ${this.clients.size} client(s)`);
    this.announced.set(key, node);
    this.counts.announcementsRelayed++;
    for (const [, client] of this.clients.live()) this.tellOfRelay(client.via, client.address, client.port);
    for (const { host, port } of this.settings.schedulerNodes) this.tellOfRelay(this.clientSockets[0]!, host, port);
  }

  /** An authentic, fresh datagram of `kind` and our version; anything else is counted and dropped. */
  private checked(opened: OpenedDatagram, kind: NonNullable<DatagramBody['kind']>): boolean {
    if (!opened.authentic) {
      this.drop('signed with another secret');
      return false;
    }
    if (opened.body.kind !== kind) return false;
    if (opened.version !== PROTOCOL_VERSION) {
      this.drop('of another protocol version');
      return false;
    }
    return this.fresh(opened.body);
  }

  /**
   * An announcement of the relay itself, sent from the socket a client pinged: the client pings the
   * relay again (as it pings any node that announces itself), and the new node answers that ping.
   */
  private tellOfRelay(via: dgram.Socket, host: string, port: number): void {
    const announce = { tcpHost: this.settings.extHost ?? '', tcpPort: via.address().port };
    this.send(via, sealDatagram(this.settings.secret, { announce }), host, port);
  }

  private tellSchedulerNodes(): void {
    if (this.state !== 'started') return;
    for (const { host, port } of this.settings.schedulerNodes) this.tellOfRelay(this.clientSockets[0]!, host, port);
  }

  /** The node-side socket that pings nodes by address, for a family. */
  private unicastSide(family: 4 | 6): NodeSide | undefined {
    return this.nodeSides.find((side) => side.family === family);
  }

  /** `nodes` and the nodes that announced themselves, of one address family. */
  private unicastTargets(family: 4 | 6): HostPort[] {
    const all = [...this.settings.nodes, ...[...this.announced.live()].map(([, node]) => node)];
    return all.filter(({ host }) => (net.isIPv6(host) ? 6 : 4) === family);
  }

  /** Our own datagrams, heard back on our own sockets (a broadcast of ours, an announcement to a client on this host). */
  private fromSelf(remote: dgram.RemoteInfo): boolean {
    return this.ownEndpoints.some(
      ({ host, port }) => port === remote.port && (host === remote.address || (isWildcard(host) && isLocal(remote.address))),
    );
  }

  /** Says `refused` to a ping we cannot verify, as a node does: never larger than it, once per source per interval. */
  private refuse(via: dgram.Socket, remote: dgram.RemoteInfo, ping: Buffer, nonce: Uint8Array, reason: string): void {
    if (nonce.length !== NONCE_BYTES || this.refusedAt.get(remote.address)) return;
    const refused = sealDatagram('', { refused: { nonce, reason } });
    if (refused.length > ping.length) return;
    this.refusedAt.set(remote.address, true);
    this.send(via, refused, remote.address, remote.port);
  }

  private fresh(body: dispy.DatagramBody): boolean {
    const verdict = this.guard.check(body);
    if (verdict === 'fresh') return true;
    this.drop(VERDICTS[verdict]);
    return false;
  }

  private drop(reason: string): void {
    this.counts.dropped++;
    this.drops.count(reason);
  }

  private send(via: dgram.Socket, datagram: Buffer, host: string, port: number): void {
    if (this.state !== 'started') return;
    via.send(datagram, port, host, (error) => {
      if (error) this.logger.debug(`datagram to ${hostPort(host, port)}: ${error.message}`);
    });
  }
}

function isLocal(address: string): boolean {
  return Object.values(os.networkInterfaces()).some((list) => list?.some((info) => info.address === address));
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
