import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import { mkdir } from 'node:fs/promises';
import {
  AuthError,
  CLIENT_CERT_MESSAGE,
  DispyError,
  ErrorCode,
  FramedSocket,
  HANDSHAKE_LIMITS,
  OptionError,
  handOverToTls,
  PLAIN_NODE_MESSAGE,
  TLS_NODE_MESSAGE,
  describeNodeTlsError,
  loadNodeTls,
  looksLikeTls,
  pskServerMessage,
  pskServerOptions,
  shortSecretWarning,
} from '@dispy/protocol';
import { createLogger, formatZodError, type Logger } from '@dispy/protocol/internal';
import { nodeOptionsSchema, resolveCpus, resolveLogLevel, type NodeOptions, type ResolvedNodeOptions } from './options.js';
import { DiscoveryResponder } from './discovery/discovery-responder.js';
import { ClientSession, type NodeContext } from './session/client-session.js';
import { NodeComputations } from './session/node-computations.js';
import { PendingConnections, type PendingLimits } from './session/pending-connections.js';
import { measureAvailInfo } from './avail-info.js';
import { ServiceHours, type ServiceEvent } from './service-hours.js';
import { checkPrefix, cleanPrefix, removePidFile, writePidFile } from './clean-prefix.js';
import { startOrphanWatchdog } from './execution/orphan-watchdog.js';
import { Announcer } from './discovery/announcer.js';
import { CpuSlots } from './execution/cpu-slots.js';

/**
 * Connections that have not authenticated yet: at most 64 in all (one more evicts the oldest),
 * and 10 from one address (one more is refused). A client authenticates in milliseconds; each
 * has 10 s (the handshake's timeout). A TLS connection counts from its TCP accept: its TLS
 * handshake is part of the wait.
 */
const PENDING_LIMITS: PendingLimits = { total: 64, perAddress: 10 };

/** Least time between two warnings that connections were refused or evicted. */
const PENDING_WARN_INTERVAL_MS = 60_000;

/** Kinds of warnings about connections before authentication, each logged at most once a minute. */
type WarningKind = 'refused' | 'evicted' | 'tls';

/** What `status()` reports. */
export interface NodeStatus {
  name: string;
  addresses: string[];
  /** CPUs offered now, and at most. */
  cpus: number;
  maxCpus: number;
  /** The clients being served (their addresses). */
  clients: string[];
  /** The computations set up here: `attached` false while their client's link is lost. */
  computations: { computeId: string; name: string; attached: boolean; jobs: number; exclusive: boolean }[];
  /** Jobs running now, over every computation. */
  running: number;
  /** Clients served so far (each counted once it has nothing left here). */
  served: number;
}

/**
 * A dispy node as a library: answers discovery, authenticates clients, and runs their
 * computations in worker processes. `npx dispynode` is a thin CLI around it.
 *
 * @throws OptionError from the constructor when an option is wrong.
 */
export class DispyNodeServer {
  readonly options: ResolvedNodeOptions;
  /** CPUs the machine lets the node serve (from the `cpus` option). */
  readonly maxCpus: number;
  private offeredCpus: number;
  readonly logger: Logger;
  private readonly servers: net.Server[] = [];
  private readonly sessions = new Set<ClientSession>();
  /** Every computation kept here, whichever connection set it up (they outlive lost links). */
  private readonly computations: NodeComputations;
  /** Sessions not yet authenticated, and TLS sockets not yet secured (see acceptTls). */
  private readonly pending: PendingConnections<ClientSession | net.Socket>;
  /** TLS sockets accepted and not yet secured, by their TCP addresses (see tcpKey). */
  private readonly handshaking = new Map<string, net.Socket>();
  /** When each kind of pending-connection warning was last logged. */
  private readonly pendingWarnedAt: Record<WarningKind, number> = { refused: 0, evicted: 0, tls: 0 };
  /** Serves TLS over accepted sockets when the node has a certificate (never listens itself). */
  private readonly tlsServer?: tls.Server;
  /** Its TLS is the secret's (TLS-PSK), not certificates'. */
  private readonly psk: boolean;
  private discovery?: DiscoveryResponder;
  /** Sessions with computations (or jobs) here: the node serves them all at once. */
  private readonly clients = new Set<ClientSession>();
  /** The node's CPUs, shared by every computation's jobs (round-robin among those with jobs waiting). */
  private readonly slots: CpuSlots;
  /** Computations running at the last look (fewer later: one closed, others may be admitted: announce). */
  private lastRunning = 0;
  private boundPort = 0;
  private served = 0;
  private shutdownRequested = false;
  private serviceHours?: ServiceHours;
  private announcer?: Announcer;
  private announceTimer?: NodeJS.Timeout;
  private closing?: Promise<void>;
  private prefixChecked = false;
  /** Kills the workers, and what their jobs started, if this process dies without stopping them. */
  private watchdog?: { stop(): void };
  private sessionContext?: NodeContext<ClientSession>;
  private resolveFinished!: () => void;
  /** Resolves when the node has stopped serving (close(), --serve reached, a client shutdown). */
  readonly finished = new Promise<void>((resolve) => (this.resolveFinished = resolve));

  constructor(options: NodeOptions = {}) {
    const parsed = nodeOptionsSchema.safeParse(options);
    if (!parsed.success) {
      const known = Object.keys(nodeOptionsSchema.shape);
      throw new OptionError(formatZodError(parsed.error, 'DispyNodeServer', known, options));
    }
    this.options = resolveLogLevel(parsed.data);
    this.maxCpus = resolveCpus(this.options.cpus);
    this.offeredCpus = this.maxCpus;
    this.slots = new CpuSlots(this.offeredCpus);
    this.logger = createLogger(`dispynode ${this.options.name}`, this.options.loglevel);
    this.pending = new PendingConnections(PENDING_LIMITS, (waiting) =>
      waiting instanceof ClientSession
        ? void waiting.shutdown(new Error('evicted: too many connections waiting to authenticate'))
        : waiting.destroy(),
    );
    this.computations = new NodeComputations({
      destPathPrefix: this.options.destPathPrefix,
      zombieIntervalMs: this.options.zombieInterval * 60_000,
      logger: this.logger,
      release: (owner) => this.context.release(owner),
      activity: () => this.tellShares(),
    });
    // With certificates, TLS with them; else, with a secret, TLS with the secret's pre-shared key
    // (the protected channel); else plain frames.
    const certificates = loadNodeTls(this.options, 'DispyNodeServer');
    this.psk = certificates === undefined && this.options.secret !== '';
    const tlsOptions = certificates ?? (this.psk ? pskServerOptions(this.options.secret) : undefined);
    if (tlsOptions) {
      this.tlsServer = tls.createServer(tlsOptions, (socket) => this.secured(socket));
      this.tlsServer.on('tlsClientError', (error, socket) => {
        this.warnPending('tls', `client ${socket.remoteAddress ?? '(gone)'}: ${describeNodeTlsError(error)}`);
        // Node leaves the socket open after a handshake timeout (it destroys it only on a TLS error).
        socket.destroy();
      });
    }
  }

  /** Whether the node serves TLS (it has a certificate, or a secret: its pre-shared key). */
  get tls(): boolean {
    return this.tlsServer !== undefined;
  }

  /** The addresses clients connect to, as host:port. */
  get addresses(): string[] {
    return this.hosts().map((host) => (host.includes(':') ? `[${host}]:${this.boundPort}` : `${host}:${this.boundPort}`));
  }

  /** The first address and the port actually bound (useful with port 0). */
  get address(): { host: string; port: number } {
    return { host: this.hosts()[0]!, port: this.boundPort };
  }

  /**
   * Binds TCP and UDP on every host and starts answering clients. A start that fails closes
   * whatever it had opened (so a process can exit) before it rejects.
   * @throws DispyError (code `DISPY_ERR_START`) when an address cannot be bound
   */
  async start(): Promise<void> {
    try {
      await this.open();
    } catch (error) {
      await this.close();
      if (DispyError.isInstance(error)) throw error;
      throw new DispyError(ErrorCode.START, `the node could not start: ${(error as Error).message}`, { cause: error });
    }
    if (!this.options.secret) {
      this.logger.warn('no secret set: anyone who can reach this node can run code on it (use --secret or DISPY_SECRET)');
    }
    const weak = shortSecretWarning(this.options.secret);
    if (weak !== undefined) this.logger.warn(weak);
    this.logger.info(
      `serving ${this.cpus} CPUs on ${this.addresses.join(', ')} (TCP${this.psk ? " with the secret's TLS" : this.tlsServer ? ' with TLS' : ''} and UDP)` +
        (this.options.requireClientCert ? '; clients must present a certificate' : ''),
    );
    this.serviceHours = new ServiceHours({
      start: this.options.serviceStart,
      stop: this.options.serviceStop,
      end: this.options.serviceEnd,
      onEvent: (event) => this.onServiceEvent(event),
    });
    this.serviceHours.start();
    if (this.options.serve === 0) {
      this.logger.info('--serve 0: serving no client; stopping');
      void this.close();
      return;
    }
    this.announcer = new Announcer({
      secret: this.options.secret,
      hosts: this.options.hosts,
      extHosts: this.options.extHosts,
      tcpPort: this.boundPort,
      schedulerHost: this.options.schedulerHost,
      ipv4Multicast: this.options.ipv4UdpMulticast,
      logger: this.logger,
    });
    this.announce();
    if (this.options.pingInterval) {
      this.announceTimer = setInterval(() => this.announce(), this.options.pingInterval * 1000);
      this.announceTimer.unref();
    }
  }

  /** Makes the prefix (refusing one another user could control), then binds a TCP server per host and the discovery sockets; what it opened is kept for close(). */
  private async open(): Promise<void> {
    const { port, secret, destPathPrefix } = this.options;
    await mkdir(destPathPrefix, { recursive: true, mode: 0o700 });
    await checkPrefix(destPathPrefix);
    this.prefixChecked = true;
    if (this.options.clean) await cleanPrefix(destPathPrefix, this.logger);
    this.watchdog ??= startOrphanWatchdog(this.logger);
    await writePidFile(destPathPrefix);
    // Replies saved for clients that went away, by an earlier run of the node on this prefix.
    await this.computations.load();
    let tcpPort = port;
    for (const host of this.hosts()) {
      const server = net.createServer((socket) => this.accept(socket));
      await new Promise<void>((resolve, reject) => {
        server.once('error', (error) => {
          reject(new DispyError(ErrorCode.START, `cannot serve on ${host} port ${tcpPort} (TCP): ${error.message}`, { cause: error }));
        });
        server.listen(tcpPort, host, () => {
          server.removeAllListeners('error');
          resolve();
        });
      });
      server.on('error', (error) => this.logger.error(`TCP server: ${error.message}`));
      tcpPort = (server.address() as net.AddressInfo).port;
      this.servers.push(server);
    }
    this.boundPort = tcpPort;
    // Every interface: IPv6 too, on its own socket (so IPv4 peers keep their plain addresses), where the host has IPv6.
    if (this.options.hosts.length === 0) await this.listenIpv6(tcpPort);
    this.discovery = new DiscoveryResponder({
      secret,
      hosts: this.options.hosts,
      extHosts: this.options.extHosts,
      ipv4Multicast: this.options.ipv4UdpMulticast,
      port: tcpPort,
      logger: this.logger,
      describe: async () => ({
        name: this.options.name,
        cpus: this.offeredCpus,
        totalCpus: this.maxCpus,
        busy: this.whyNot(undefined, false) !== undefined,
        platform: `${os.platform()}-${os.arch()} node-${process.versions.node}`,
        tcpPort,
        availInfo: await measureAvailInfo(destPathPrefix),
      }),
    });
    await this.discovery.start();
  }

  /** Serves TCP on :: (IPv6 only) at `port` too; a host without IPv6 serves IPv4 alone. */
  private async listenIpv6(port: number): Promise<void> {
    const server = net.createServer((socket) => this.accept(socket));
    const listening = await new Promise<boolean>((resolve) => {
      server.once('error', (error) => {
        this.logger.debug(`not serving on IPv6: ${error.message}`);
        resolve(false);
      });
      server.listen({ port, host: '::', ipv6Only: true }, () => {
        server.removeAllListeners('error');
        resolve(true);
      });
    });
    if (!listening) return;
    server.on('error', (error) => this.logger.error(`TCP server: ${error.message}`));
    this.servers.push(server);
  }

  /** Tells clients this node takes computations (at start, when one closes, every --ping-interval). */
  private announce(): void {
    if (this.offeredCpus === 0 || this.whyNot(undefined, false) !== undefined) return;
    try {
      this.announcer?.announce();
    } catch (error) {
      // An announcement is a courtesy (clients also find the node by discovery): never fatal.
      this.logger.debug(`announcement: ${(error as Error).message}`);
    }
  }

  private onServiceEvent(event: ServiceEvent): void {
    this.logger.info(`service ${event} (daily service hours)`);
    if (event === 'start') this.setCpus(this.maxCpus);
    else this.setCpus(0);
    if (event === 'end') void this.releaseClients();
  }

  /**
   * Closes the computations of every client connected now (dispy's `release`): their running jobs
   * are killed, and each client is told that the node stopped serving it, so it gives the node up.
   * Computations kept for clients whose link was lost stay until they come back or expire.
   * @returns how many clients were released
   */
  async releaseClients(): Promise<number> {
    const sessions = [...this.clients];
    await Promise.all(sessions.map((session) => session.shutdown(undefined, 'close', true)));
    return sessions.length;
  }

  /** CPUs the node offers now; 0 while it takes no new jobs. */
  get cpus(): number {
    return this.offeredCpus;
  }

  /**
   * Changes the CPUs the node offers (0..maxCpus; negative: that many fewer than maxCpus). A
   * client being served is told, and its worker pools shrink or grow; with 0 running jobs finish
   * and no new ones are taken.
   * @returns the CPUs now offered
   * @throws OptionError for a count out of range
   */
  setCpus(cpus: number): number {
    const resolved = cpus < 0 ? this.maxCpus + cpus : cpus;
    if (!Number.isInteger(cpus) || resolved < 0 || resolved > this.maxCpus) {
      throw new OptionError(`cpus must be an integer from ${-this.maxCpus} to ${this.maxCpus}, got ${cpus}`);
    }
    this.offeredCpus = resolved;
    this.slots.setCapacity(resolved);
    for (const session of this.sessions) session.nodeCpusChanged(resolved);
    this.tellShares();
    this.logger.info(resolved === 0 ? 'takes no new jobs (0 CPUs)' : `serves ${resolved} CPUs`);
    return resolved;
  }

  /** What the node is doing now. */
  status(): NodeStatus {
    let running = this.computations.detachedRunning();
    for (const session of this.sessions) running += session.status().running;
    return {
      name: this.options.name,
      addresses: this.addresses,
      cpus: this.cpus,
      maxCpus: this.maxCpus,
      clients: [...this.clients].map((session) => session.peer),
      computations: this.computations.describe(),
      running,
      served: this.served,
    };
  }

  /**
   * Stops serving: closes sockets, kills running jobs and their workers, removes computations.
   * Replies not yet acknowledged by their clients are on disk when it resolves (a node started
   * again on the same prefix resends them on Reattach); those of the jobs it kills are not kept.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.serviceHours?.stopTimers();
      clearInterval(this.announceTimer);
      this.announcer?.close();
      this.discovery?.close();
      const closing = this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
      await Promise.all([...this.sessions].map((session) => session.shutdown(undefined, 'detach', true)));
      await this.computations.close();
      await Promise.all(closing);
      this.servers.length = 0;
      // Only from a prefix that passed checkPrefix (a refused one may lead anywhere).
      if (this.prefixChecked) await removePidFile(this.options.destPathPrefix).catch(() => undefined);
      this.watchdog?.stop();
      this.resolveFinished();
    })();
    return this.closing;
  }

  private hosts(): string[] {
    return this.options.hosts.length > 0 ? this.options.hosts : ['0.0.0.0'];
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const address = socket.remoteAddress ?? '';
    // The heartbeat notices a dead link; keepalive also lets the kernel drop a half-open one.
    socket.setKeepAlive(true, this.options.heartbeatInterval * 1000);
    if (!this.pending.hasRoomFor(address)) {
      this.warnPending(
        'refused',
        `refused a connection from ${address}: ${PENDING_LIMITS.perAddress} from it wait to authenticate already`,
      );
      socket.destroy();
      return;
    }
    if (this.tlsServer) {
      this.acceptTls(socket, this.tlsServer);
      return;
    }
    const session = this.startSession(socket);
    // A TLS client's first bytes are its ClientHello: tell it in plain that this node does not use TLS.
    socket.prependOnceListener('data', (chunk: Buffer) => {
      if (!looksLikeTls(chunk)) return;
      this.warnPending(
        'tls',
        `client ${session.peer} tried TLS: it has a secret, or TLS files, and this node has neither (start it with the secret, or --certfile and --keyfile); refused`,
      );
      session.refuse(new AuthError(PLAIN_NODE_MESSAGE));
    });
  }

  /**
   * A TLS node waits for the client's ClientHello. A plain client sends nothing (it waits for the
   * node's Hello): after PLAIN_CLIENT_WAIT_MS, or at once when its first bytes are not TLS, it is
   * told in a plain Error frame that this node requires TLS, and the connection closes.
   */
  private acceptTls(socket: net.Socket, server: tls.Server): void {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    // Counted until it authenticates: as this socket until secured, then as its session (startSession).
    const key = tcpKey(socket);
    this.admitPending(socket, socket.remoteAddress ?? '');
    this.handshaking.set(key, socket);
    handOverToTls(socket, server, {
      plainMessage: this.psk ? pskServerMessage('node') : TLS_NODE_MESSAGE,
      onPlain: (why) =>
        this.warnPending(
          'tls',
          this.psk
            ? `client ${peer} ${why}: it has no secret (or speaks an older protocol), and this node has one; refused`
            : `client ${peer} ${why}: it does not use TLS, which this node requires (give the client a cafile); refused`,
        ),
      onClose: () => {
        this.handshaking.delete(key);
        this.pending.remove(socket);
      },
    });
  }

  /** A client's TLS handshake is done: with --require-client-cert, its certificate must be signed by --cafile. */
  private secured(socket: tls.TLSSocket): void {
    if (this.options.requireClientCert && !socket.authorized) {
      const presented = Object.keys(socket.getPeerCertificate()).length > 0;
      const why = presented
        ? `its certificate is not signed by this node's --cafile (${String(socket.authorizationError)})`
        : 'it presented no certificate, and this node requires one (--require-client-cert)';
      this.warnPending('tls', `client ${socket.remoteAddress}:${socket.remotePort}: ${why}; refused`);
      new FramedSocket(socket, { limits: HANDSHAKE_LIMITS, onFrame: () => undefined, onClose: () => undefined }).destroy(
        new AuthError(CLIENT_CERT_MESSAGE),
      );
      return;
    }
    this.startSession(socket);
  }

  /** Starts a client's session on an accepted (plain) or secured (TLS) socket. */
  private startSession(socket: net.Socket): ClientSession {
    const key = tcpKey(socket);
    const accepted = this.handshaking.get(key);
    this.handshaking.delete(key);
    const session = new ClientSession(socket, this.context, (ended) => {
      this.pending.remove(ended);
      this.sessions.delete(ended);
    });
    this.sessions.add(session);
    if (this.closing) {
      void session.shutdown();
      return session;
    }
    if (accepted === undefined || !this.pending.transfer(accepted, session)) this.admitPending(session, socket.remoteAddress ?? '');
    return session;
  }

  /** Counts a connection waiting to authenticate (its address has room: see accept). */
  private admitPending(waiting: ClientSession | net.Socket, address: string): void {
    if (this.pending.admit(waiting, address) === 'evicted') {
      this.warnPending('evicted', `${PENDING_LIMITS.total} connections wait to authenticate: the oldest is closed for each new one`);
    }
  }

  /** Warns of refused or evicted connections, each kind at most once a PENDING_WARN_INTERVAL_MS (a flood must not flood the log). */
  private warnPending(kind: WarningKind, message: string): void {
    const now = Date.now();
    if (now - this.pendingWarnedAt[kind] < PENDING_WARN_INTERVAL_MS) {
      this.logger.debug(message);
      return;
    }
    this.pendingWarnedAt[kind] = now;
    this.logger.warn(`${message} (more such messages at debug level for a minute)`);
  }

  /** What sessions need of this node, shared by all of them. */
  private get context(): NodeContext<ClientSession> {
    this.sessionContext ??= this.makeContext();
    return this.sessionContext;
  }

  private makeContext(): NodeContext<ClientSession> {
    const offeredCpus = (): number => this.offeredCpus;
    return {
      name: this.options.name,
      secret: this.options.secret,
      get cpus() {
        return offeredCpus();
      },
      destPathPrefix: this.options.destPathPrefix,
      logger: this.logger,
      zombieIntervalMs: this.options.zombieInterval * 60_000,
      heartbeatIntervalMs: this.options.heartbeatInterval * 1000,
      computations: this.computations,
      maxFileSize: this.options.maxFileSize,
      maxOutputBytes: this.options.maxOutputSize,
      authenticated: (session) => this.pending.remove(session),
      requestShutdown: (session) => {
        if (!this.options.clientShutdown) {
          this.logger.warn(`client ${session.peer} asked this node to shut down; ignored (start it with --client-shutdown to allow)`);
          return;
        }
        this.logger.info(`client ${session.peer} asked this node to shut down; it will once the client is done`);
        this.shutdownRequested = true;
      },
      slots: this.slots,
      admit: (session, computeId, exclusive) => {
        const why = this.whyNot(session, exclusive, computeId);
        if (why !== undefined) return why;
        // Computations left idle by clients that went away give the node up to one that wants it alone.
        if (exclusive || this.computations.idleExclusive) this.computations.closeIdleDetached(session);
        this.computations.reserve(computeId, exclusive);
        this.clients.add(session);
        return undefined;
      },
      claim: (session, from) => {
        if (from !== undefined && from !== session && this.clients.delete(from as ClientSession)) {
          this.computations.transferOwner(from, session);
        }
        this.clients.add(session);
        return true;
      },
      release: (released) => this.release(released),
      changed: () => {
        this.lastRunning = this.computations.running().size;
        this.tellShares();
      },
    };
  }

  /**
   * Why the node does not take a new computation now (undefined: it does). `session`: the
   * client asking (undefined: any new client, as discovery answers); `computeId`: the computation.
   */
  private whyNot(session: ClientSession | undefined, exclusive: boolean, computeId?: string): string | undefined {
    const { serve, maxClients } = this.options;
    if (this.shutdownRequested || this.closing) return 'the node is stopping';
    if (serve >= 0 && (session === undefined || !this.clients.has(session)) && this.served + this.clients.size >= serve) {
      return `the node serves no more clients (--serve ${serve})`;
    }
    const running = this.computations.running();
    if (computeId !== undefined) running.delete(computeId);
    for (const [id, alone] of running) if (alone) return `computation ${id} runs on this node alone (exclusive) until it closes`;
    if (exclusive && running.size > 0)
      return `${running.size} other computation${running.size === 1 ? ' runs' : 's run'} here; an exclusive one waits until none does`;
    if (maxClients > 0 && running.size >= maxClients) return `the node serves ${maxClients} computations already (--max-clients)`;
    return undefined;
  }

  /** `session` may have nothing left here; the node counts it out when so, and says when it takes computations again. */
  private release(released: unknown): void {
    const session = released as ClientSession;
    // The client may still have computations here, or jobs running after its link was lost.
    if (this.clients.has(session) && !session.holdsComputations && !this.computations.holdsJobs(session)) {
      this.clients.delete(session);
      if (session.servedComputation) this.served++;
      this.logger.info(`client ${session.peer} released this node (nothing of it is left here)`);
    }
    this.tellShares();
    const running = this.computations.running().size;
    const fewer = running < this.lastRunning;
    this.lastRunning = running;
    if (
      this.closing ||
      this.clients.size > 0 ||
      !(this.shutdownRequested || (this.options.serve >= 0 && this.served >= this.options.serve))
    ) {
      if (fewer) this.announce();
      return;
    }
    this.logger.info(this.shutdownRequested ? 'shutting down, as a client asked' : `served ${this.served} clients (--serve): stopping`);
    void this.close();
  }

  /**
   * Tells each client how many of the node's CPUs it may fill (NodeCpus, when that changed):
   * all while no other computation has jobs here; else its share, by its computations against
   * the others' with jobs, rounded up. Whatever the clients send, the node's CPU slots go
   * round-robin among the computations with jobs waiting; the share keeps a client from piling
   * jobs on a node busy with others' while another node of its is idle.
   */
  private tellShares(): void {
    if (this.closing) return;
    const active = this.computations.active();
    const offered = this.offeredCpus;
    for (const session of this.sessions) {
      const own = session.readyComputations;
      const others = active.filter((kept) => !session.holds(kept)).length;
      session.tellShare(own === 0 || others === 0 || offered === 0 ? offered : Math.max(1, Math.ceil((offered * own) / (own + others))));
    }
  }
}

/** A TCP connection's addresses, the same for a TLS socket as for the socket it wraps. */
function tcpKey(socket: net.Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}|${socket.localAddress}|${socket.localPort}`;
}
