import { mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  DEFAULT_CLIENT_PORT,
  DEFAULT_NODE_PORT,
  DEFAULT_SCHEDULER_PORT,
  DispyError,
  ErrorCode,
  OptionError,
  type dispy,
} from '@dispy/protocol';
import { createLogger, isWildcard, type Logger, type LogLevel } from '@dispy/protocol/internal';
import { JobScheduler } from '../cluster/job-scheduler.js';
import { DEFAULT_MAX_FILE_SIZE, DEFAULT_MAX_RETRIES } from '../cluster/job-scheduler-options.js';
import type { ComputationEvents, LocalFile, NodeAllocator, NodeInfo } from '../cluster/types.js';
import { ClientLink, type ClientJobRef } from './client-link.js';
import { DEFAULT_CLIENT_GRACE_SECONDS, KeptClientComputations } from './kept-client-computations.js';
import { matchesNodes } from './node-patterns.js';

/** Options of `DispyScheduler` (the flags of `dispyscheduler`). */
export interface DispySchedulerOptions {
  /** Nodes used for every computation: addresses, host names, `*` patterns (default `['*']`: broadcast discovery). */
  nodes?: string[];
  /** Local addresses: the first is where clients are served and nodes are reached from (default: any). */
  hosts?: string[];
  /** Addresses clients and nodes should use for this host (NAT); informational for now. */
  extHosts?: string[];
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
  /** Accepted for dispy's sake: clients may not change the CPUs of shared nodes yet (see the reference). */
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
  ) {
    this.isWildcard = isWildcard(host);
  }
  allocate(_owner: DispyScheduler, ipAddr: string, name: string, cpus: number): number {
    return matchesNodes(this.clientNodes, ipAddr, name) ? cpus : 0;
  }
  narrowed(clientNodes: readonly string[]): SchedulerAllocator {
    const narrowed = new SchedulerAllocator(this.host, clientNodes);
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
  /** Computations that outlive their client's connection (for the grace period, their replies for the zombie interval). */
  private readonly kept: KeptClientComputations;
  private readonly server: net.Server;
  private readonly dir: string;
  private readonly heartbeatSeconds: number;
  private started = false;
  private closing?: Promise<void>;

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
    const nodes = options.nodes && options.nodes.length > 0 ? options.nodes : ['*'];
    this.logger = createLogger('dispyscheduler', options.loglevel ?? 'info');
    this.heartbeatSeconds = options.msgTimeout ?? 10;
    this.allocators = nodes.map((host) => new SchedulerAllocator(host));
    this.dir = path.resolve(
      options.destPath ?? path.join(os.tmpdir(), `dispyscheduler-${options.schedulerPort ?? DEFAULT_SCHEDULER_PORT}`),
    );
    this.scheduler = new JobScheduler<ClientJobRef, DispyScheduler, SchedulerAllocator>({
      secret: options.nodeSecret ?? '',
      ipAddr: options.hosts?.[0],
      port: options.port ?? DEFAULT_CLIENT_PORT,
      portIsDefault: options.port === undefined,
      nodePort: options.nodePort ?? DEFAULT_NODE_PORT,
      pingInterval: options.pingInterval,
      clientName: `dispyscheduler@${os.hostname()}`,
      logger: this.logger,
      fileDir: path.join(this.dir, 'job-files'),
      maxFileSize: options.maxFileSize,
    });
    this.kept = new KeptClientComputations({
      dir: this.dir,
      graceMs: (options.clientGrace ?? DEFAULT_CLIENT_GRACE_SECONDS) * 1000,
      zombieMs: (options.zombieInterval ?? 60) * 60_000,
      logger: this.logger,
      closeComputation: (computeId) => this.scheduler.closeComputation(computeId),
    });
    this.server = net.createServer((socket) => this.accept(socket));
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
    this.logger.info(
      `serving SharedJobClusters at ${listening}:${listeningPort}; nodes ${this.allocators.map((a) => a.host).join(', ')} ` +
        `(node port ${this.options.nodePort ?? DEFAULT_NODE_PORT}, scheduler port ${this.options.port ?? DEFAULT_CLIENT_PORT})`,
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
    const client: ClientLink = new ClientLink(socket, {
      secret: this.options.clusterSecret ?? '',
      logger: this.logger,
      heartbeatSeconds: this.heartbeatSeconds,
      // What a client is told it may be away and take its computation back.
      zombieSeconds: this.kept.graceSeconds,
      name: `dispyscheduler@${os.hostname()}`,
      fileDir: this.dir,
      maxFileSize: this.options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE,
      addComputation: (setup, files, nodes, events) => this.addComputation(setup, files, nodes, events),
      submit: (request) => this.scheduler.submit(request),
      cancel: (job) => this.scheduler.cancel(job),
      closeComputation: (computeId) => this.scheduler.closeComputation(computeId),
      onEnd: (ended) => this.clients.delete(ended),
      kept: this.kept,
    });
    this.clients.add(client);
  }

  private addComputation(setup: dispy.Setup, files: LocalFile[], nodes: string[], events: ComputationEvents<ClientJobRef>): Promise<void> {
    return this.scheduler.addComputation({
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
      allocators: this.allocators.map((allocator) => allocator.narrowed(nodes)),
      reentrant: setup.reentrant,
      maxRetries: setup.reentrant ? setup.maxRetries : DEFAULT_MAX_RETRIES,
      exclusive: setup.exclusive,
      pulseInterval: this.options.pulseInterval ?? 0,
      owner: this,
      events,
    });
  }

  /** The nodes serving a client's computation (for tests and status). */
  nodesOf(computeId: string): NodeInfo[] {
    return this.scheduler.nodesOf(computeId);
  }
}
