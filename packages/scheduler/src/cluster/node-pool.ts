import type net from 'node:net';
import { DispyError, type ClientTls, type Frame, type dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import { toAvailInfo } from './avail-info.js';
import { NodeLink } from './node-link.js';

export interface NodePoolOptions {
  secret: string;
  /** TLS toward nodes (undefined: plain). */
  tls?: ClientTls;
  clientName: string;
  /** Local address of node connections (undefined: any). */
  localAddress?: string;
  logger: Logger;
  /** A frame from a node that answers no request of its connection. */
  onFrame: (link: NodeLink, frame: Frame, attachment?: Buffer[]) => void;
  /** A node the pool held went away (its connection closed, or it was presumed dead). */
  onGone: (link: NodeLink, error?: Error) => void;
  /** @internal Makes the socket to a node (tests); default `net.connect`. */
  connect?: (host: string, port: number) => net.Socket;
}

/**
 * The nodes the scheduler is connected to: one authenticated connection per node (a `NodeLink`,
 * keyed `host:port`), however many computations it serves. Connecting twice to one node at once
 * yields one connection. A node that goes away leaves the pool before `onGone` is called.
 */
export class NodePool {
  private readonly links = new Map<string, NodeLink>();
  private readonly connecting = new Map<string, Promise<NodeLink | undefined>>();
  private closed = false;

  constructor(private readonly options: NodePoolOptions) {}

  get(key: string): NodeLink | undefined {
    return this.links.get(key);
  }

  /** Every node connected now. */
  all(): NodeLink[] {
    return [...this.links.values()];
  }

  /** Nodes where a computation is set up. */
  serving(computeId: string): NodeLink[] {
    return this.all().filter((link) => link.computeIds.has(computeId));
  }

  /** The node of a name (as it calls itself), if one is connected. */
  named(name: string): NodeLink | undefined {
    return this.all().find((link) => link.info.name === name);
  }

  /**
   * Connects to the node of a discovery reply and authenticates; resolves undefined (logged) when
   * that fails or the pool is closed meanwhile. `active`: keep the process alive on its account.
   */
  connect(reply: dispy.DiscoveryReply, active: boolean): Promise<NodeLink | undefined> {
    const key = `${reply.tcpHost}:${reply.tcpPort}`;
    let pending = this.connecting.get(key);
    if (pending) return pending;
    const { connect } = this.options;
    const link = new NodeLink({
      host: reply.tcpHost,
      port: reply.tcpPort,
      name: reply.name,
      totalCpus: reply.totalCpus || reply.cpus,
      platform: reply.platform,
      localAddress: this.options.localAddress,
      secret: this.options.secret,
      tls: this.options.tls,
      clientName: this.options.clientName,
      onFrame: this.options.onFrame,
      onClose: (from, error) => this.closedLink(from, error),
      connect: connect && (() => connect(reply.tcpHost, reply.tcpPort)),
    });
    link.info.availInfo = toAvailInfo(reply.availInfo);
    pending = link.connection
      .open()
      .then(() => {
        if (this.closed) {
          link.connection.destroy();
          return undefined;
        }
        this.links.set(key, link);
        link.connection.setActive(active);
        return link;
      })
      .catch((error: Error) => {
        const level = DispyError.isInstance(error) ? 'error' : 'warn';
        this.options.logger[level](`node ${reply.name} (${key}): ${error.message}`);
        link.connection.destroy();
        return undefined;
      })
      .finally(() => this.connecting.delete(key));
    this.connecting.set(key, pending);
    return pending;
  }

  /** Hangs up on a node and forgets it (no `onGone`: the caller settles what it served). */
  hangUp(link: NodeLink): void {
    if (this.links.get(link.key) === link) this.links.delete(link.key);
    link.stopHeartbeat();
    link.connection.destroy();
  }

  /** Presumes a node dead when it has been silent for five pulse intervals. */
  watchPulses(link: NodeLink, seconds: number): void {
    // One watch per node, whatever the number of computations set up there.
    if (link.pulsesWatched) return;
    link.pulsesWatched = true;
    const timer = setInterval(() => {
      if (this.links.get(link.key) !== link) {
        clearInterval(timer);
        return;
      }
      if (Date.now() - link.info.lastHeard > 5 * seconds * 1000) {
        clearInterval(timer);
        link.connection.destroy(new Error(`no pulse for ${5 * seconds} s`));
      }
    }, seconds * 1000);
    timer.unref();
  }

  /** Keeps the process alive on the nodes' account (work is pending), or lets it exit. */
  setActive(active: boolean): void {
    for (const link of this.links.values()) link.connection.setActive(active);
  }

  /** Hangs up on every node; connections still opening are dropped when they open. */
  close(): void {
    this.closed = true;
    for (const link of this.all()) this.hangUp(link);
  }

  private closedLink(link: NodeLink, error?: Error): void {
    link.stopHeartbeat();
    if (this.links.get(link.key) !== link) return;
    this.links.delete(link.key);
    this.options.onGone(link, error);
  }
}
