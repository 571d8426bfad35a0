import type net from 'node:net';
import { DispyError, ErrorCode, type ClientTls, type Frame, type dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import { toAvailInfo } from './avail-info.js';
import { NodeLink } from './node-link.js';
import { Reconnection } from './reconnection.js';

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
  /**
   * A node the pool held went away: its connection closed and it was not to be reconnected, it
   * did not come back within its zombie interval, or it was presumed dead (pulses).
   */
  onGone: (link: NodeLink, error?: Error) => void;
  /** Whether a link whose connection was lost should be reconnected (it has our computations, and the node keeps them). */
  mayReconnect: (link: NodeLink) => boolean;
  /** A link's connection was lost (not closed by us); it is being reconnected. */
  onLost: (link: NodeLink, error?: Error) => void;
  /**
   * A lost link has a new connection: takes its computations back (Reattach) and settles its jobs;
   * rejects when that fails (the connection is then closed and the next attempt follows).
   */
  onBack: (link: NodeLink) => Promise<void>;
  /** @internal Makes the socket to a node (tests); default `net.connect`. */
  connect?: (host: string, port: number) => net.Socket;
}

/**
 * The nodes the scheduler is connected to: one authenticated connection per node (a `NodeLink`,
 * keyed `host:port`), however many computations it serves. Connecting twice to one node at once
 * yields one connection. A link whose connection is lost stays in the pool while it is
 * reconnected (`Reconnection`: backoff from 0.25 s to 5 s, until the node's zombie interval has
 * passed since the loss); a node that goes away for good leaves the pool before `onGone` is called.
 */
export class NodePool {
  private readonly links = new Map<string, NodeLink>();
  private readonly connecting = new Map<string, Promise<NodeLink | undefined>>();
  private readonly reconnecting = new Map<NodeLink, Reconnection>();
  private closed = false;
  private active = false;

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
        link.connection.setActive(active || this.active);
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
    this.reconnecting.get(link)?.stop();
    this.reconnecting.delete(link);
    link.close();
  }

  /** Gives a node up at once (no reconnecting): it leaves the pool, then `onGone`. */
  presumeDead(link: NodeLink, error: Error): void {
    if (this.links.get(link.key) !== link) return;
    this.hangUp(link);
    this.options.onGone(link, error);
  }

  /** Presumes a node dead when it has been silent for five pulse intervals (also while its link is being reconnected). */
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
        this.presumeDead(link, new Error(`no pulse for ${5 * seconds} s`));
      }
    }, seconds * 1000);
    timer.unref();
  }

  /** Keeps the process alive on the nodes' account (work is pending), or lets it exit. */
  setActive(active: boolean): void {
    this.active = active;
    for (const link of this.links.values()) link.connection.setActive(active);
    for (const reconnection of this.reconnecting.values()) reconnection.setActive(active);
  }

  /** Hangs up on every node; connections still opening are dropped when they open. */
  close(): void {
    this.closed = true;
    for (const link of this.all()) this.hangUp(link);
  }

  private closedLink(link: NodeLink, error?: Error): void {
    if (this.links.get(link.key) !== link) return;
    // While reconnecting, a new connection that closes is one failed attempt: Reconnection goes on.
    if (link.state === 'down') return;
    if (this.closed || link.stopping || !this.options.mayReconnect(link)) {
      this.links.delete(link.key);
      link.close();
      this.options.onGone(link, error ?? (link.stopping ? new DispyError(ErrorCode.NODE_STOPPED, 'the node stopped') : undefined));
      return;
    }
    this.reconnect(link, error);
  }

  /** Reconnects a lost link until the node's zombie interval has passed since the loss. */
  private reconnect(link: NodeLink, error?: Error): void {
    const { logger } = this.options;
    const lostAt = Date.now();
    const zombieSeconds = link.zombieSeconds;
    link.state = 'down';
    this.options.onLost(link, error);
    const reconnection = new Reconnection({
      deadline: lostAt + zombieSeconds * 1000,
      attempt: async () => {
        await link.reconnect();
        link.connection.setActive(this.active);
        try {
          await this.options.onBack(link);
        } catch (failure) {
          link.connection.destroy();
          throw failure;
        }
        // No I/O event comes between onBack's end and here: a close from now on is a new loss.
        link.state = 'up';
        logger.info(`node ${link.info.name} (${link.key}) is back after ${((Date.now() - lostAt) / 1000).toFixed(1)} s; its jobs go on`);
      },
      failed: (failure, attempt) =>
        logger.debug(`node ${link.info.name} (${link.key}): reconnect attempt ${attempt} failed: ${failure.message}`),
      abandon: () => link.close(),
      gaveUp: (lastError) => {
        this.reconnecting.delete(link);
        if (this.links.get(link.key) !== link) return;
        this.links.delete(link.key);
        link.close();
        const reason = error ? `: ${error.message}` : '';
        const last = lastError ? ` (last attempt: ${lastError.message})` : '';
        this.options.onGone(
          link,
          new DispyError(ErrorCode.NO_ANSWER, `link lost${reason}; not back within its zombie interval of ${zombieSeconds} s${last}`),
        );
      },
    });
    reconnection.setActive(this.active);
    this.reconnecting.set(link, reconnection);
    void reconnection.ended.then(() => {
      if (this.reconnecting.get(link) === reconnection) this.reconnecting.delete(link);
    });
  }
}
