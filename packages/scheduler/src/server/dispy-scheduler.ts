import { mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import {
  AuthError,
  DEFAULT_CLIENT_PORT,
  DEFAULT_NODE_PORT,
  DEFAULT_SCHEDULER_PORT,
  DispyError,
  ErrorCode,
  FramedSocket,
  HANDSHAKE_LIMITS,
  OptionError,
  handOverToTls,
  loadClientTls,
  loadNodeTls,
  looksLikeTls,
  describeNodeTlsError,
  pskServerMessage,
  pskServerOptions,
  type ClientTls,
  type TlsOptionNames,
  type dispy,
} from '@dispy/protocol';
import { createLogger, type Logger, type LogLevel, type MonitorSource } from '@dispy/protocol/internal';
import { JobScheduler } from '../cluster/job-scheduler.js';
import { DEFAULT_MAX_FILE_SIZE, DEFAULT_MAX_RETRIES } from '../cluster/job-scheduler-options.js';
import type { ComputationEvents, LocalFile, NodeAllocator, NodeInfo } from '../cluster/types.js';
import { ClientLink, type ClientJobRef, type ClientNodeOps } from './client-link.js';
import { allocationFor, type ClientAllocation } from './client-allocations.js';
import { JobFileRelay } from './job-file-relay.js';
import { DEFAULT_CLIENT_GRACE_SECONDS, KeptClientComputations } from './kept-client-computations.js';
import { matchesNodes } from './node-patterns.js';
import { ComputationMonitor } from './computation-monitor.js';

/** Told of each computation dispyscheduler runs, for `@dispy/monitor` (`dispyscheduler --httpd`). */
export interface ComputationWatcher {
  added(source: MonitorSource): void;
  removed(source: MonitorSource): void;
}

/** Said when --ext-host is given: it has no use for a scheduler. */
export const EXT_HOST_WARNING =
  '--ext-host has no effect on dispyscheduler and is deprecated: it opens every connection to its nodes, and clients connect to the ' +
  'address they are given (schedulerNode); behind NAT, forward --scheduler-port to it (see the guide "Remote networks")';

/** Options of `DispyScheduler` (the flags of `dispyscheduler`). */
export interface DispySchedulerOptions {
  /** Nodes used for every computation: addresses, host names, `*` patterns (default `['*']`: broadcast discovery). */
  nodes?: string[];
  /** Local addresses: the first is where clients are served and nodes are reached from (default: any). */
  hosts?: string[];
  /**
   * @deprecated No effect (a warning says so): the scheduler opens every connection to its nodes,
   * clients connect to the address they are given (`schedulerNode`), and nodes announce to their
   * `--scheduler-host`; nothing learns this host's address from the scheduler.
   */
  extHosts?: string[];
  /** Discover nodes by the IPv4 multicast group 239.255.61.59 instead of broadcast (nodes need `--ipv4-udp-multicast`). */
  ipv4UdpMulticast?: boolean;
  /** UDP/TCP port of this scheduler toward nodes, as a client's (default 51347). */
  port?: number;
  /** Port of the nodes (default 51348). */
  nodePort?: number;
  /** TCP port for SharedJobClusters (default 51349; 0: any free port). */
  schedulerPort?: number;
  /** Secret shared with the nodes. */
  nodeSecret?: string;
  /** Secret the SharedJobClusters must prove. */
  clusterSecret?: string;
  /**
   * TLS toward the nodes, as a JobCluster's `keyfile`, `certfile`, `cafile` and `certFingerprint`:
   * any of `nodeCafile`, `nodeCertfile`, `nodeCertFingerprint` turns it on. The key of `nodeCertfile`
   * (default: in `nodeCertfile` itself).
   */
  nodeKeyfile?: string;
  /** This scheduler's certificate, presented to nodes that require one (`dispynode --require-client-cert`). */
  nodeCertfile?: string;
  /** The CA that signed the nodes' certificates (default: the system's CAs and `nodeCertfile`). */
  nodeCafile?: string;
  /** SHA-256 fingerprints of the nodes' (self-signed) certificates: a node is trusted when its certificate has one. */
  nodeCertFingerprint?: string | string[];
  /**
   * TLS toward the clients: the key of `clusterCertfile` (default: in `clusterCertfile` itself).
   * With `clusterCertfile`, the scheduler port serves TLS only.
   */
  clusterKeyfile?: string;
  /** This scheduler's certificate for SharedJobClusters (they verify it by their `cafile` or `certFingerprint`). */
  clusterCertfile?: string;
  /** The CA that signed the SharedJobClusters' certificates, for `requireClientCert` (default: `clusterCertfile` itself). */
  clusterCafile?: string;
  /** SharedJobClusters must present a certificate signed by `clusterCafile` (mutual TLS). */
  requireClientCert?: boolean;
  /** Seconds between the nodes' pulses for each computation (0 or undefined: none). */
  pulseInterval?: number;
  /** Seconds between discovery pings. */
  pingInterval?: number;
  /**
   * Minutes the replies a client gone did not collect are kept (on disk under `destPath`, for
   * `recoverJobs`), from when it was last heard (default 60).
   */
  zombieInterval?: number;
  /**
   * Seconds a client's computation goes on once its link is lost, for the client to reconnect and
   * take it back (default 60). Then it is closed, its running jobs terminated (its share of the
   * nodes goes to the others); its replies not collected are kept for `zombieInterval`.
   */
  clientGrace?: number;
  /** Seconds between heartbeats on client connections; a client silent for 4 of them is presumed dead (default 10). */
  msgTimeout?: number;
  /** Nodes always remove a computation's files when it closes, whatever its `cleanup` says. */
  cleanupNodes?: boolean;
  /** Removes the scheduler's directory (files of earlier runs) at start. */
  clean?: boolean;
  /**
   * Clients may change the CPUs their computation uses on the shared nodes (`setNodeCpus`,
   * NodeAllocate `cpus`), as an exclusive computation always may (dispy's --cooperative).
   */
  cooperative?: boolean;
  /** Where the clients' depends files and the files jobs send back are kept (default: a directory under the system's temp dir). */
  destPath?: string;
  /** Largest depends file a client may send, in bytes (0: no limit; default 10 MiB... as the node's). */
  maxFileSize?: number;
  loglevel?: LogLevel;
}

/** A node allocator of the scheduler's own `nodes`, narrowed per computation to its client's `nodes`. */
class SchedulerAllocator implements NodeAllocator<DispyScheduler> {
  readonly isWildcard: boolean;
  readonly resolved = new Set<string>();
  constructor(
    readonly host: string,
    private readonly clientNodes: readonly string[] = [],
    /** The client's NodeAllocates (when it sent them: Allocate), which replace `clientNodes`. */
    readonly allocations?: readonly ClientAllocation[],
    /** The CPUs of `allocations` are honoured (--cooperative, or an exclusive computation). */
    private readonly cpusHonoured = false,
  ) {
    // A pattern (`*`, `192.168.1.*`) is found by broadcast, as the client's NodeAllocate does (isWildcard of
    // @dispy/protocol/internal means 0.0.0.0 or ::, not a pattern: `-n '*'`, the default, was looked up as a host name).
    this.isWildcard = host.includes('*');
  }
  allocate(_owner: DispyScheduler, ipAddr: string, name: string, cpus: number): number {
    if (!this.allocations) return matchesNodes(this.clientNodes, ipAddr, name) ? cpus : 0;
    const allocation = allocationFor(this.allocations, ipAddr, name);
    if (!allocation) return 0;
    if (!this.cpusHonoured || allocation.cpus === 0) return cpus;
    return allocation.cpus > 0 ? Math.min(allocation.cpus, cpus) : Math.max(0, cpus + allocation.cpus);
  }
  narrowed(clientNodes: readonly string[], allocations?: readonly ClientAllocation[], cpusHonoured = false): SchedulerAllocator {
    const narrowed = new SchedulerAllocator(this.host, clientNodes, allocations, cpusHonoured);
    for (const address of this.resolved) narrowed.resolved.add(address);
    return narrowed;
  }
}

function checkPort(name: string, value: number | undefined, min: number): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= min && value <= 65535)) {
    throw new OptionError(`dispyscheduler: ${name} must be an integer ${min}..65535, got ${String(value)}`);
  }
}

function checkSeconds(name: string, value: number | undefined, min: number): void {
  if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value >= min)) {
    throw new OptionError(`dispyscheduler: ${name} must be a number ≥ ${min}, got ${String(value)}`);
  }
}

/** The names of the TLS options toward nodes, for the messages of their errors. */
const NODE_TLS_NAMES: TlsOptionNames = {
  keyfile: 'nodeKeyfile',
  certfile: 'nodeCertfile',
  cafile: 'nodeCafile',
  certFingerprint: 'nodeCertFingerprint',
  requireClientCert: 'requireClientCert',
};

/** The names of the TLS options toward clients. */
const CLUSTER_TLS_NAMES: TlsOptionNames = {
  keyfile: 'clusterKeyfile',
  certfile: 'clusterCertfile',
  cafile: 'clusterCafile',
  certFingerprint: 'certFingerprint',
  requireClientCert: 'requireClientCert',
  server: "the scheduler's",
};

/** What a TLS scheduler answers a client that does not speak TLS (in plain, then closes). */
export const TLS_SCHEDULER_MESSAGE =
  'this dispyscheduler requires TLS (--cluster-certfile): give the SharedJobCluster a cafile (the CA that signed the scheduler certificate) or a certFingerprint';
/** What a scheduler that requires client certificates answers a client without a good one (inside TLS, then closes). */
export const SCHEDULER_CLIENT_CERT_MESSAGE =
  "this dispyscheduler requires a client certificate signed by its --cluster-cafile (--require-client-cert): give the SharedJobCluster a keyfile and certfile signed by the scheduler's CA";

/** A TLS mismatch with a client is logged at warning level at most once a minute (then at debug level): a flood must not flood the log. */
const TLS_WARN_INTERVAL_MS = 60_000;

/**
 * dispyscheduler: one `JobScheduler` (the engine `JobCluster` embeds) shared by the
 * SharedJobClusters of many programs. It finds and manages the nodes (node secret), accepts
 * clients over authenticated persistent connections (cluster secret), adds each client's
 * computation to the scheduler, runs its jobs on the shared nodes, and streams the events back.
 */
export class DispyScheduler {
  readonly logger: Logger;
  private readonly scheduler: JobScheduler<ClientJobRef, DispyScheduler, SchedulerAllocator>;
  private readonly allocators: SchedulerAllocator[];
  private readonly clients = new Set<ClientLink>();
  private readonly relay: JobFileRelay;
  /** Computations whose client may change their CPUs on the nodes (exclusive ones; all with --cooperative). */
  private readonly mayChangeCpus = new Set<string>();
  /** Computations that outlive their client's connection (for the grace period, their replies for the zombie interval). */
  private readonly kept: KeptClientComputations;
  private readonly server: net.Server;
  /** Serves TLS over accepted sockets when the scheduler has a certificate toward clients (never listens itself). */
  private readonly tlsServer?: tls.Server;
  /** Its TLS toward clients is the cluster secret's (TLS-PSK), not certificates'. */
  private readonly psk: boolean;
  /** Accepted sockets whose TLS handshake is not done (destroyed on close). */
  private readonly handshaking = new Set<net.Socket>();
  private tlsWarnedAt = 0;
  private readonly nodeTls?: ClientTls;
  private readonly dir: string;
  private readonly heartbeatSeconds: number;
  private started = false;
  private closing?: Promise<void>;
  /** Each computation's monitor view, by computeId. */
  private readonly monitors = new Map<string, ComputationMonitor>();
  private readonly watchers = new Set<ComputationWatcher>();

  constructor(private readonly options: DispySchedulerOptions = {}) {
    checkPort('port', options.port, 0);
    checkPort('nodePort', options.nodePort, 1);
    checkPort('schedulerPort', options.schedulerPort, 0);
    checkSeconds('pulseInterval', options.pulseInterval, 0);
    checkSeconds('pingInterval', options.pingInterval, 0.1);
    checkSeconds('zombieInterval', options.zombieInterval, 0);
    checkSeconds('msgTimeout', options.msgTimeout, 0.1);
    checkSeconds('clientGrace', options.clientGrace, 0);
    if (options.pulseInterval !== undefined && options.pulseInterval > 0 && options.pulseInterval < 1) {
      throw new OptionError(`dispyscheduler: pulseInterval must be 0 (none) or at least 1 second, got ${options.pulseInterval}`);
    }
    if (options.requireClientCert !== undefined && typeof options.requireClientCert !== 'boolean') {
      throw new OptionError(`dispyscheduler: requireClientCert must be true or false, got ${String(options.requireClientCert)}`);
    }
    this.nodeTls = loadClientTls(
      {
        keyfile: options.nodeKeyfile,
        certfile: options.nodeCertfile,
        cafile: options.nodeCafile,
        certFingerprint: options.nodeCertFingerprint,
      },
      'dispyscheduler',
      NODE_TLS_NAMES,
    );
    const clusterCertificates = loadNodeTls(
      {
        keyfile: options.clusterKeyfile,
        certfile: options.clusterCertfile,
        cafile: options.clusterCafile,
        requireClientCert: options.requireClientCert,
      },
      'dispyscheduler',
      CLUSTER_TLS_NAMES,
    );
    const nodes = options.nodes && options.nodes.length > 0 ? options.nodes : ['*'];
    this.logger = createLogger('dispyscheduler', options.loglevel ?? 'info');
    if (options.extHosts && options.extHosts.length > 0) this.logger.warn(EXT_HOST_WARNING);
    this.heartbeatSeconds = options.msgTimeout ?? 10;
    this.allocators = nodes.map((host) => new SchedulerAllocator(host));
    this.relay = new JobFileRelay(this.logger, (computeId) => [...this.clients].find((client) => client.holds(computeId)));
    this.dir = path.resolve(
      options.destPath ?? path.join(os.tmpdir(), `dispyscheduler-${options.schedulerPort ?? DEFAULT_SCHEDULER_PORT}`),
    );
    this.scheduler = new JobScheduler<ClientJobRef, DispyScheduler, SchedulerAllocator>({
      secret: options.nodeSecret ?? '',
      activeWhileJobs: true,
      ipAddr: options.hosts?.[0],
      discoveryAddrs: options.hosts,
      ipv4Multicast: options.ipv4UdpMulticast,
      port: options.port ?? DEFAULT_CLIENT_PORT,
      portIsDefault: options.port === undefined,
      nodePort: options.nodePort ?? DEFAULT_NODE_PORT,
      pingInterval: options.pingInterval,
      clientName: `dispyscheduler@${os.hostname()}`,
      logger: this.logger,
      fileDir: path.join(this.dir, 'job-files'),
      maxFileSize: options.maxFileSize,
      // Files sent by jobs go on to their clients as they arrive; nothing of them is kept here.
      relayJobFiles: (link, jobOf) => this.relay.forNode(link, jobOf),
      tls: this.nodeTls,
    });
    this.kept = new KeptClientComputations({
      dir: this.dir,
      graceMs: (options.clientGrace ?? DEFAULT_CLIENT_GRACE_SECONDS) * 1000,
      zombieMs: (options.zombieInterval ?? 60) * 60_000,
      logger: this.logger,
      closeComputation: (computeId) => this.closeComputation(computeId),
    });
    // Toward clients as a node does: TLS with certificates, else with the cluster secret's pre-shared key, else plain.
    this.psk = clusterCertificates === undefined && (options.clusterSecret ?? '') !== '';
    const clusterTls = clusterCertificates ?? (this.psk ? pskServerOptions(options.clusterSecret!) : undefined);
    this.server = net.createServer((socket) => this.accept(socket));
    if (clusterTls) {
      this.tlsServer = tls.createServer(clusterTls, (socket) => this.secured(socket));
      this.tlsServer.on('tlsClientError', (error, socket) => {
        this.warnTls(`client ${socket.remoteAddress ?? '(gone)'}: ${describeNodeTlsError(error, 'dispyscheduler')}`);
        // Node leaves the socket open after a handshake timeout (it destroys it only on a TLS error).
        socket.destroy();
      });
    }
  }

  /** Where clients connect, once started. */
  get address(): { host: string; port: number } {
    const address = this.server.address() as net.AddressInfo | null;
    return { host: address?.address ?? '', port: address?.port ?? 0 };
  }

  /** Listens for clients. Nodes are looked for when the first computation arrives. */
  async start(): Promise<void> {
    if (this.started) throw new DispyError(ErrorCode.START, 'dispyscheduler is started already');
    this.started = true;
    if (this.options.clean) rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    // Replies an earlier run kept for clients gone wait for recoverJobs until they expire.
    await this.kept.load();
    const host = this.options.hosts?.[0];
    const port = this.options.schedulerPort ?? DEFAULT_SCHEDULER_PORT;
    await new Promise<void>((resolve, reject) => {
      const failed = (error: Error): void =>
        reject(
          new DispyError(ErrorCode.START, `dispyscheduler cannot listen on ${host ?? '*'}:${port}: ${error.message}`, { cause: error }),
        );
      this.server.once('error', failed);
      this.server.listen({ host, port }, () => {
        this.server.off('error', failed);
        resolve();
      });
    });
    this.server.on('error', (error) => this.logger.error(`listening for clients: ${error.message}`));
    const { host: listening, port: listeningPort } = this.address;
    const clientTls = !this.tlsServer
      ? ''
      : this.psk
        ? " with the cluster secret's TLS"
        : this.options.requireClientCert
          ? ' with TLS (clients must present a certificate signed by --cluster-cafile)'
          : ' with TLS';
    this.logger.info(
      `serving SharedJobClusters at ${listening}:${listeningPort}${clientTls}; nodes ${this.allocators.map((a) => a.host).join(', ')}` +
        `${this.nodeTls ? ' with TLS' : this.options.nodeSecret ? " with the node secret's TLS" : ''} (node port ${this.options.nodePort ?? DEFAULT_NODE_PORT}, scheduler port ${this.options.port ?? DEFAULT_CLIENT_PORT})`,
    );
  }

  /** The clients connected now and their computations. */
  status(): { clients: ReturnType<ClientLink['status']>[] } {
    return { clients: [...this.clients].filter((client) => client.isAuthenticated).map((client) => client.status()) };
  }

  /** Stops taking clients, closes every client's computations (their running jobs terminated), and hangs up on the nodes. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      // server.close resolves once every connection has ended: the clients are hung up on meanwhile.
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
      await Promise.all([...this.clients].map((client) => client.shutdown(new Error('dispyscheduler is stopping'), { closeAll: true })));
      for (const socket of this.handshaking) socket.destroy();
      await stopped;
      // Computations of clients away are closed with the rest; their saved replies stay for the next run.
      const closingKept = this.kept.close();
      await this.scheduler.close();
      await closingKept;
      rmSync(path.join(this.dir, 'job-files'), { recursive: true, force: true });
    })();
    return this.closing;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    socket.setKeepAlive(true, 15_000);
    socket.setNoDelay(true);
    if (this.tlsServer) {
      this.acceptTls(socket, this.tlsServer);
      return;
    }
    const client = this.startClient(socket);
    // A TLS client's first bytes are its ClientHello (it has failed already on this scheduler's plain Hello).
    socket.prependOnceListener('data', (chunk: Buffer) => {
      if (!looksLikeTls(chunk)) return;
      this.warnTls(
        `client ${client.peer} tried TLS: it has a cluster secret, or TLS files, and this dispyscheduler has neither (start it with --cluster-secret, or --cluster-certfile and --cluster-keyfile); refused`,
      );
      void client.shutdown();
    });
  }

  /**
   * A TLS scheduler waits for the client's ClientHello. A plain client sends nothing (it waits for
   * the Hello): after PLAIN_CLIENT_WAIT_MS, or at once when its first bytes are not TLS, it is told
   * in a plain Error frame that this scheduler requires TLS, and the connection closes.
   */
  private acceptTls(socket: net.Socket, server: tls.Server): void {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.handshaking.add(socket);
    handOverToTls(socket, server, {
      plainMessage: this.psk ? pskServerMessage('dispyscheduler') : TLS_SCHEDULER_MESSAGE,
      onPlain: (why) =>
        this.warnTls(
          this.psk
            ? `client ${peer} ${why}: it has no cluster secret (or speaks an older protocol), and this dispyscheduler has one; refused`
            : `client ${peer} ${why}: it does not use TLS, which this dispyscheduler requires (give the SharedJobCluster a cafile); refused`,
        ),
      onTls: () => this.logger.debug(`client ${peer} began a TLS handshake`),
      onClose: () => this.handshaking.delete(socket),
    });
  }

  /** A client's TLS handshake is done: with requireClientCert, its certificate must be signed by clusterCafile. */
  private secured(socket: tls.TLSSocket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (this.options.requireClientCert && !socket.authorized) {
      const presented = Object.keys(socket.getPeerCertificate()).length > 0;
      const why = presented
        ? `its certificate is not signed by this dispyscheduler's --cluster-cafile (${String(socket.authorizationError)})`
        : 'it presented no certificate, and this dispyscheduler requires one (--require-client-cert)';
      this.warnTls(`client ${socket.remoteAddress}:${socket.remotePort}: ${why}; refused`);
      new FramedSocket(socket, { limits: HANDSHAKE_LIMITS, onFrame: () => undefined, onClose: () => undefined }).destroy(
        new AuthError(SCHEDULER_CLIENT_CERT_MESSAGE),
      );
      return;
    }
    this.startClient(socket);
  }

  /** Starts a client's link on an accepted (plain) or secured (TLS) socket. */
  private startClient(socket: net.Socket): ClientLink {
    const client: ClientLink = new ClientLink(socket, {
      secret: this.options.clusterSecret ?? '',
      logger: this.logger,
      heartbeatSeconds: this.heartbeatSeconds,
      // What a client is told it may be away and take its computation back.
      zombieSeconds: this.kept.graceSeconds,
      name: `dispyscheduler@${os.hostname()}`,
      fileDir: this.dir,
      maxFileSize: this.options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE,
      addComputation: (setup, files, nodes, events, allocations) => this.addComputation(setup, files, nodes, events, allocations),
      nodeOps: this.nodeOps(),
      submit: (request) => {
        const job = this.scheduler.submit(request);
        this.monitors.get(request.computeId)?.jobSubmitted(job);
        return job;
      },
      cancel: (job) => {
        const outcome = this.scheduler.cancel(job);
        // A job taken out of the queue gets no event from the scheduler: its client is told directly.
        if (outcome === 'dequeued') this.monitors.get(job.computeId)?.jobCancelled(job);
        return outcome;
      },
      closeComputation: (computeId) => {
        this.mayChangeCpus.delete(computeId);
        return this.closeComputation(computeId);
      },
      onEnd: (ended) => {
        this.relay.clientEnded(ended);
        this.clients.delete(ended);
      },
      kept: this.kept,
    });
    this.clients.add(client);
    return client;
  }

  /** Warns of a TLS mismatch with a client, at most once a TLS_WARN_INTERVAL_MS (then at debug level). */
  private warnTls(message: string): void {
    const now = Date.now();
    if (now - this.tlsWarnedAt < TLS_WARN_INTERVAL_MS) {
      this.logger.debug(message);
      return;
    }
    this.tlsWarnedAt = now;
    this.logger.warn(`${message} (more such messages at debug level for a minute)`);
  }

  private addComputation(
    setup: dispy.Setup,
    files: LocalFile[],
    nodes: string[],
    events: ComputationEvents<ClientJobRef>,
    allocations?: ClientAllocation[],
  ): Promise<void> {
    const cpusHonoured = this.options.cooperative === true || setup.exclusive;
    if (cpusHonoured) this.mayChangeCpus.add(setup.computeId);
    const monitor = this.monitorOf(setup.computeId, setup.name);
    const added = this.scheduler.addComputation({
      computeId: setup.computeId,
      name: setup.name,
      kind: setup.kind,
      source: setup.source,
      definitions: setup.definitions,
      values: setup.values.length > 0 ? setup.values : undefined,
      files,
      setup: setup.setup ?? undefined,
      cleanupFunction: setup.cleanupFunction ?? undefined,
      destPath: setup.destPath,
      cleanup: this.options.cleanupNodes === true || setup.cleanup,
      allocators: this.allocators.map((allocator) => allocator.narrowed(nodes, allocations, cpusHonoured)),
      // A client's NodeAllocate brings its own depends files and setup arguments to the nodes it chooses.
      nodeExtras: (allocator, node) => {
        const allocation = allocator.allocations && node ? allocationFor(allocator.allocations, node.host, node.name) : undefined;
        return Promise.resolve({ files: allocation?.files ?? [], setupArgs: allocation?.setupArgs });
      },
      reentrant: setup.reentrant,
      maxRetries: setup.reentrant ? setup.maxRetries : DEFAULT_MAX_RETRIES,
      exclusive: setup.exclusive,
      pulseInterval: this.options.pulseInterval ?? 0,
      owner: this,
      events: monitor.tap(events),
    });
    added.catch(() => this.forgetMonitor(setup.computeId));
    return added;
  }

  /**
   * Tells `watcher` of every computation, those running now first, as it is added and removed
   * (`dispyscheduler --httpd` shows them with @dispy/monitor). Returns the function that stops it.
   */
  watchComputations(watcher: ComputationWatcher): () => void {
    this.watchers.add(watcher);
    for (const monitor of this.monitors.values()) watcher.added(monitor);
    return () => this.watchers.delete(watcher);
  }

  private closeComputation(computeId: string): Promise<void> {
    this.forgetMonitor(computeId);
    return this.scheduler.closeComputation(computeId);
  }

  private monitorOf(computeId: string, name: string): ComputationMonitor {
    let monitor = this.monitors.get(computeId);
    if (monitor) return monitor;
    monitor = new ComputationMonitor(computeId, name, {
      nodesOf: (id) => this.scheduler.nodesOf(id),
      cancel: (job) => [...this.clients].find((client) => client.holds(job.computeId))?.cancelJob(job.computeId, job.ref.jobId) ?? false,
      setNodeCpus: (id, nodeKey, cpus) => this.scheduler.setNodeCpus(id, nodeKey, cpus),
      allocate: (id, host) => this.scheduler.allocate(id, new SchedulerAllocator(host, [host])),
      deallocate: (id, nodeKey) => this.scheduler.deallocate(id, nodeKey),
      closeNode: (id, nodeKey) => this.scheduler.closeNode(id, nodeKey, false),
    });
    this.monitors.set(computeId, monitor);
    for (const watcher of this.watchers) watcher.added(monitor);
    return monitor;
  }

  private forgetMonitor(computeId: string): void {
    const monitor = this.monitors.get(computeId);
    if (!monitor) return;
    this.monitors.delete(computeId);
    for (const watcher of this.watchers) watcher.removed(monitor);
  }

  /** What clients do to their computations on single nodes (SharedJobCluster's node methods). */
  private nodeOps(): ClientNodeOps {
    return {
      sendFile: (computeId, nodeKey, file) => this.scheduler.sendFile(computeId, nodeKey, file),
      closeNode: (computeId, nodeKey, terminatePending) => this.scheduler.closeNode(computeId, nodeKey, terminatePending),
      deallocate: (computeId, nodeKey) => this.scheduler.deallocate(computeId, nodeKey),
      allocate: async (computeId, allocations) => {
        const cpusHonoured = this.mayChangeCpus.has(computeId);
        for (const allocator of this.allocators)
          await this.scheduler.allocate(computeId, allocator.narrowed([], allocations, cpusHonoured));
      },
      setNodeCpus: async (computeId, nodeKey, cpus) => {
        const node = this.scheduler.nodesOf(computeId).find((info) => info.key === nodeKey);
        if (!node) return { error: `node ${nodeKey} does not serve the computation` };
        // As in dispy: a shared node's CPUs are the scheduler's, unless it is --cooperative or the computation has the node alone.
        if (!this.mayChangeCpus.has(computeId)) return { cpus: node.cpus, unchanged: true };
        const now = await this.scheduler.setNodeCpus(computeId, nodeKey, cpus);
        return now < 0 ? { error: `node ${nodeKey} did not change the CPUs of the computation (see the scheduler's log)` } : { cpus: now };
      },
      jobFileDone: (client, done) => this.relay.clientDone(client, done),
    };
  }

  /** The nodes serving a client's computation (for tests and status). */
  nodesOf(computeId: string): NodeInfo[] {
    return this.scheduler.nodesOf(computeId);
  }
}
