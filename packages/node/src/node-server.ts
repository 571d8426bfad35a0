import net from 'node:net';
import os from 'node:os';
import { mkdir } from 'node:fs/promises';
import { OptionError } from '@dispy/protocol';
import { createLogger, formatZodError, isWildcard, type Logger } from '@dispy/protocol/internal';
import { nodeOptionsSchema, resolveCpus, type NodeOptions, type ResolvedNodeOptions } from './options.js';
import { DiscoveryResponder } from './discovery/discovery-responder.js';
import { ClientSession, type NodeContext } from './session/client-session.js';
import { measureAvailInfo } from './avail-info.js';
import { ServiceHours, type ServiceEvent } from './service-hours.js';
import { cleanPrefix, writePidFile } from './clean-prefix.js';
import { Announcer } from './discovery/announcer.js';

/** What `status()` reports. */
export interface NodeStatus {
  name: string;
  addresses: string[];
  /** CPUs offered now, and at most. */
  cpus: number;
  maxCpus: number;
  /** The client being served, if any. */
  client?: string;
  running: number;
  /** Clients served so far. */
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
  private discovery?: DiscoveryResponder;
  private owner?: ClientSession;
  private boundPort = 0;
  private served = 0;
  private shutdownRequested = false;
  private serviceHours?: ServiceHours;
  private announcer?: Announcer;
  private announceTimer?: NodeJS.Timeout;
  private closing?: Promise<void>;
  private resolveFinished!: () => void;
  /** Resolves when the node has stopped serving (close(), --serve reached, a client shutdown). */
  readonly finished = new Promise<void>((resolve) => (this.resolveFinished = resolve));

  constructor(options: NodeOptions = {}) {
    const parsed = nodeOptionsSchema.safeParse(options);
    if (!parsed.success) {
      const known = Object.keys(nodeOptionsSchema.shape);
      throw new OptionError(formatZodError(parsed.error, 'DispyNodeServer', known, options));
    }
    this.options = parsed.data;
    try {
      this.maxCpus = resolveCpus(this.options.cpus);
    } catch (error) {
      throw new OptionError((error as Error).message);
    }
    this.offeredCpus = this.maxCpus;
    this.logger = createLogger(`dispynode ${this.options.name}`, this.options.logLevel);
  }

  /** The addresses clients connect to, as host:port. */
  get addresses(): string[] {
    return this.hosts().map((host) => (host.includes(':') ? `[${host}]:${this.boundPort}` : `${host}:${this.boundPort}`));
  }

  /** The first address and the port actually bound (useful with port 0). */
  get address(): { host: string; port: number } {
    return { host: this.hosts()[0]!, port: this.boundPort };
  }

  /** Binds TCP and UDP on every host and starts answering clients. */
  async start(): Promise<void> {
    const { port, secret } = this.options;
    await mkdir(this.options.destPathPrefix, { recursive: true, mode: 0o700 });
    if (this.options.clean) await cleanPrefix(this.options.destPathPrefix, this.logger);
    await writePidFile(this.options.destPathPrefix);
    let tcpPort = port;
    for (const host of this.hosts()) {
      const server = net.createServer((socket) => this.accept(socket));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(tcpPort, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (error) => this.logger.error(`TCP server: ${error.message}`));
      tcpPort = (server.address() as net.AddressInfo).port;
      this.servers.push(server);
    }
    this.boundPort = tcpPort;
    this.discovery = new DiscoveryResponder({
      secret,
      hosts: this.options.hosts,
      port: tcpPort,
      logger: this.logger,
      describe: async () => ({
        name: this.options.name,
        cpus: this.owner ? 0 : this.offeredCpus,
        totalCpus: this.maxCpus,
        busy: this.owner !== undefined,
        platform: `${os.platform()}-${os.arch()} node-${process.versions.node}`,
        tcpHost: this.options.extHosts[0] ?? this.options.hosts[0] ?? '',
        tcpPort,
        availInfo: await measureAvailInfo(this.options.destPathPrefix),
      }),
    });
    try {
      await this.discovery.start();
    } catch (error) {
      await this.close();
      throw error;
    }
    if (!secret) {
      this.logger.warn('no secret set: anyone who can reach this node can run code on it (use --secret or DISPY_SECRET)');
    }
    this.logger.info(`serving ${this.cpus} CPUs on ${this.addresses.join(', ')} (TCP and UDP)`);
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
      secret,
      name: this.options.name,
      tcpHost: this.options.extHosts[0] ?? (isWildcard(this.hosts()[0]!) ? '' : this.hosts()[0]!),
      tcpPort,
      schedulerHost: this.options.schedulerHost,
      broadcast: this.hosts().some((host) => !host.startsWith('127.') && host !== '::1'),
      logger: this.logger,
    });
    this.announce();
    if (this.options.pingInterval) {
      this.announceTimer = setInterval(() => this.announce(), this.options.pingInterval * 1000);
      this.announceTimer.unref();
    }
  }

  /** Tells clients this node is free (at start, when a client leaves, every --ping-interval). */
  private announce(): void {
    if (!this.owner && this.offeredCpus > 0) this.announcer?.announce();
  }

  private onServiceEvent(event: ServiceEvent): void {
    this.logger.info(`service ${event} (daily service hours)`);
    if (event === 'start') this.setCpus(this.maxCpus);
    else this.setCpus(0);
    if (event === 'end') for (const session of this.sessions) void session.shutdown();
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
   * @throws RangeError for a count out of range
   */
  setCpus(cpus: number): number {
    const resolved = cpus < 0 ? this.maxCpus + cpus : cpus;
    if (!Number.isInteger(cpus) || resolved < 0 || resolved > this.maxCpus) {
      throw new RangeError(`cpus must be an integer from ${-this.maxCpus} to ${this.maxCpus}, got ${cpus}`);
    }
    this.offeredCpus = resolved;
    for (const session of this.sessions) session.nodeCpusChanged(resolved);
    this.logger.info(resolved === 0 ? 'takes no new jobs (0 CPUs)' : `serves ${resolved} CPUs`);
    return resolved;
  }

  /** What the node is doing now. */
  status(): NodeStatus {
    let running = 0;
    for (const session of this.sessions) running += session.status().running;
    return {
      name: this.options.name,
      addresses: this.addresses,
      cpus: this.cpus,
      maxCpus: this.maxCpus,
      client: this.owner?.peer,
      running,
      served: this.served,
    };
  }

  /** Stops serving: kills running jobs and their workers, removes computations, closes sockets. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.serviceHours?.stopTimers();
      clearInterval(this.announceTimer);
      this.announcer?.close();
      this.discovery?.close();
      const closing = this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
      await Promise.all([...this.sessions].map((session) => session.shutdown()));
      await Promise.all(closing);
      this.servers.length = 0;
      this.resolveFinished();
    })();
    return this.closing;
  }

  private hosts(): string[] {
    return this.options.hosts.length > 0 ? this.options.hosts : ['0.0.0.0'];
  }

  private accept(socket: net.Socket): void {
    const server = this;
    const context: NodeContext = {
      name: this.options.name,
      secret: this.options.secret,
      get cpus() {
        return server.offeredCpus;
      },
      destPathPrefix: this.options.destPathPrefix,
      logger: this.logger,
      zombieIntervalMs: this.options.zombieInterval * 60_000,
      maxFileSize: this.options.maxFileSize,
      requestShutdown: (session) => {
        if (!this.options.clientShutdown) {
          this.logger.warn(`client ${session.peer} asked this node to shut down; ignored (start it with --client-shutdown to allow)`);
          return;
        }
        this.logger.info(`client ${session.peer} asked this node to shut down; it will once the client is done`);
        this.shutdownRequested = true;
      },
      claim: (session) => {
        if (this.owner && this.owner !== session) return false;
        this.owner = session;
        return true;
      },
      release: (session) => {
        if (this.owner !== session) return;
        this.owner = undefined;
        if (session.servedComputation) this.served++;
        this.logger.info(`client ${session.peer} released this node`);
        if (this.shutdownRequested || (this.options.serve >= 0 && this.served >= this.options.serve)) {
          this.logger.info(this.shutdownRequested ? 'shutting down, as a client asked' : `served ${this.served} clients (--serve): stopping`);
          void this.close();
        } else {
          this.announce();
        }
      },
    };
    const session = new ClientSession(socket, context, (ended) => this.sessions.delete(ended));
    this.sessions.add(session);
  }
}
