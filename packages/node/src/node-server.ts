import net from 'node:net';
import os from 'node:os';
import { mkdir } from 'node:fs/promises';
import { OptionError, createLogger, formatZodError, type Logger } from '@dispy/protocol';
import { nodeOptionsSchema, resolveCpus, type NodeOptions, type ResolvedNodeOptions } from './options.js';
import { DiscoveryResponder } from './discovery/discovery-responder.js';
import { ClientSession, type NodeContext } from './session/client-session.js';
import { measureAvailInfo } from './avail-info.js';

/** What `status()` reports. */
export interface NodeStatus {
  name: string;
  addresses: string[];
  cpus: number;
  client?: string;
  running: number;
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
        tcpHost: this.options.hosts[0] ?? '',
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
    return { name: this.options.name, addresses: this.addresses, cpus: this.cpus, client: this.owner?.peer, running };
  }

  /** Stops serving: kills running jobs and their workers, removes computations, closes sockets. */
  async close(): Promise<void> {
    this.discovery?.close();
    const closing = this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
    await Promise.all([...this.sessions].map((session) => session.shutdown()));
    await Promise.all(closing);
    this.servers.length = 0;
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
      claim: (session) => {
        if (this.owner && this.owner !== session) return false;
        this.owner = session;
        return true;
      },
      release: (session) => {
        if (this.owner !== session) return;
        this.owner = undefined;
        this.logger.info(`client ${session.peer} released this node`);
      },
    };
    const session = new ClientSession(socket, context, (ended) => this.sessions.delete(ended));
    this.sessions.add(session);
  }
}
