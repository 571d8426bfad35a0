import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { DispyError, ErrorCode, OptionError } from '@dispy/protocol';
import { MONITOR_SOURCE, createLogger, type Logger, type MonitorSource, type MonitorSourceProvider } from '@dispy/protocol/internal';
import { AccessGuard, isLoopbackHost } from './access.js';
import { runAction } from './actions.js';
import { MonitorHub, withoutArgs } from './monitor-hub.js';
import { resolveMonitorOptions, type DispyHTTPServerOptions, type MonitorSettings } from './monitor-options.js';
import { StaticAssets } from './static-assets.js';

/** What the monitor shows: a `JobCluster` or `SharedJobCluster` (or any other `MonitorSource`). */
export type MonitorTarget = MonitorSourceProvider | MonitorSource;

/** Largest action request body, in bytes. */
const MAX_ACTION_BYTES = 4096;

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // The token may be in the address: never pass it on.
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/**
 * Serves a live page of clusters: their jobs, nodes and throughput, pushed over a WebSocket as
 * they change (at most 4 times a second, each browser its own stream), with actions to cancel
 * jobs, set a node's CPUs, and allocate, deallocate or close nodes. It starts listening at once;
 * `await start()` for its address, `await shutdown()` to stop it.
 *
 * @throws OptionError for a wrong option (naming it), a TLS file that cannot be read, or a
 *   non-loopback `host` without a `token` (unless `allowRemoteWithoutToken`)
 */
export class DispyHTTPServer {
  readonly options: Readonly<MonitorSettings>;
  private readonly logger: Logger;
  private readonly hub: MonitorHub;
  private readonly guard: AccessGuard;
  private readonly assets = new StaticAssets(new URL('../assets/', import.meta.url));
  private readonly server: http.Server;
  private readonly sockets = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  private readonly secure: boolean;
  private readonly listening: Promise<{ host: string; port: number }>;
  private closing?: Promise<void>;

  constructor(clusters: MonitorTarget | MonitorTarget[] = [], options: DispyHTTPServerOptions = {}) {
    this.options = resolveMonitorOptions(options);
    const { host, port, token, certfile, keyfile } = this.options;
    if (!isLoopbackHost(host) && token === undefined && !this.options.allowRemoteWithoutToken) {
      throw new OptionError(
        `DispyHTTPServer: host ${host} is reachable from other machines, and without a "token" anyone reaching it could cancel jobs ` +
          'and close nodes: give a token, or serve on 127.0.0.1, or allow it with "allowRemoteWithoutToken: true"',
      );
    }
    this.logger = createLogger('dispy monitor', this.options.loglevel);
    this.hub = new MonitorHub(this.options.showJobArgs, this.logger);
    this.guard = new AccessGuard(token, host);
    this.secure = certfile !== undefined;
    const handler = (request: IncomingMessage, response: ServerResponse) => this.handle(request, response);
    this.server = certfile !== undefined ? https.createServer(readTls(certfile, keyfile), handler) : http.createServer(handler);
    this.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(request, socket, head));
    for (const cluster of [clusters].flat()) this.addCluster(cluster);
    this.listening = new Promise((resolve, reject) => {
      this.server.once('error', (error: NodeJS.ErrnoException) => {
        const why = error.code === 'EADDRINUSE' ? 'the port is in use' : error.code === 'EACCES' ? 'no permission' : error.message;
        const failure = new DispyError(ErrorCode.START, `DispyHTTPServer could not listen on ${host}:${port}: ${why}`, { cause: error });
        this.logger.error(failure.message);
        reject(failure);
      });
      this.server.listen(port, host, () => {
        const address = this.server.address() as AddressInfo;
        this.guard.listening(address.port);
        this.logger.info(`serving on ${this.secure ? 'https' : 'http'}://${host}:${address.port}/`);
        resolve({ host, port: address.port });
      });
    });
    // Whoever awaits start() gets the failure; it is logged in any case.
    this.listening.catch(() => {});
  }

  /**
   * Resolves the address served once listening.
   * @throws DispyError `DISPY_ERR_START` when it cannot listen (the port is in use, say)
   */
  start(): Promise<{ host: string; port: number }> {
    return this.listening;
  }

  /** Shows a cluster too. */
  addCluster(cluster: MonitorTarget): void {
    this.hub.add(sourceOf(cluster));
  }

  /** Stops showing a cluster; false when it was not shown. */
  delCluster(cluster: MonitorTarget): boolean {
    return this.hub.remove(sourceOf(cluster));
  }

  /** Closes every browser's socket and the server. Safe to call more than once. */
  shutdown(): Promise<void> {
    this.closing ??= (async () => {
      this.hub.close();
      await Promise.allSettled([this.listening]);
      await new Promise<void>((resolve) => {
        this.sockets.close(() => resolve());
      });
      await new Promise<void>((resolve) => {
        if (!this.server.listening) return resolve();
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const url = parseUrl(request);
    if (!url) return reply(response, 400, 'text/plain; charset=utf-8', '400 Bad Request: not a path\n');
    const admission = this.guard.admit(request, url);
    if (!admission.ok) return reply(response, 403, 'text/plain; charset=utf-8', `403 Forbidden: ${admission.why}\n`);
    if (admission.setCookie) {
      // The token moves from the address to the cookie, and the address is shown without it.
      url.searchParams.delete('token');
      response.setHeader('set-cookie', this.guard.cookieHeader(this.options.token!, this.secure));
      if (request.method === 'GET') {
        // One leading slash: `//host/x` would send the browser to another site.
        response.writeHead(303, { ...SECURITY_HEADERS, location: `/${url.pathname.replace(/^\/+/, '')}${url.search}` });
        response.end();
        return;
      }
    }
    if (request.method === 'POST' && url.pathname === '/api/action') return this.action(request, response);
    if (request.method !== 'GET' && request.method !== 'HEAD')
      return reply(response, 405, 'text/plain; charset=utf-8', '405 Method Not Allowed\n');
    if (url.pathname === '/api/state') {
      return reply(
        response,
        200,
        'application/json',
        JSON.stringify({ showJobArgs: this.options.showJobArgs, clusters: this.hub.state() }),
      );
    }
    if (url.pathname === '/api/jobs') {
      const source = this.hub.source(url.searchParams.get('cluster') ?? '');
      if (!source) return reply(response, 404, 'application/json', JSON.stringify({ ok: false, error: 'no such cluster here' }));
      const jobs = source.nodeJobs(url.searchParams.get('node') ?? '');
      return reply(response, 200, 'application/json', JSON.stringify({ jobs: this.options.showJobArgs ? jobs : withoutArgs(jobs) }));
    }
    let asset: ReturnType<StaticAssets['get']>;
    try {
      asset = this.assets.get(url.pathname);
    } catch (error) {
      this.logger.error(`a file of the page could not be read: ${(error as Error).message}`);
      return reply(response, 500, 'text/plain; charset=utf-8', '500 the page could not be read\n');
    }
    if (!asset) return reply(response, 404, 'text/plain; charset=utf-8', '404 Not Found\n');
    reply(response, 200, asset.type, asset.body);
  }

  /** `POST /api/action`: from a page of this server only (Origin), as JSON (which another site's form cannot send). */
  private action(request: IncomingMessage, response: ServerResponse): void {
    if (!this.guard.sameOrigin(request, this.secure))
      return reply(response, 403, 'text/plain; charset=utf-8', '403 Forbidden: cross-origin action\n');
    if (!(request.headers['content-type'] ?? '').startsWith('application/json')) {
      return reply(response, 415, 'text/plain; charset=utf-8', '415 actions are JSON\n');
    }
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_ACTION_BYTES) {
        reply(response, 413, 'text/plain; charset=utf-8', '413 action too large\n');
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('error', () => {});
    request.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return reply(response, 400, 'application/json', JSON.stringify({ ok: false, error: 'not JSON' }));
      }
      runAction(body, (id) => this.hub.source(id)).then(
        (result) => reply(response, result.status, 'application/json', JSON.stringify(result.body)),
        (error: Error) => reply(response, 500, 'application/json', JSON.stringify({ ok: false, error: error.message })),
      );
    });
  }

  private upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    const url = parseUrl(request);
    const admission = url && this.guard.admit(request, url);
    if (url?.pathname !== '/ws' || !admission?.ok || !this.guard.sameOrigin(request, this.secure) || this.closing) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    this.sockets.handleUpgrade(request, socket, head, (ws) => this.hub.attach(ws));
  }
}

/** A request's path and query as a URL; undefined when it is not one (`//`, `//%zz`: `new URL` throws on them). */
function parseUrl(request: IncomingMessage): URL | undefined {
  try {
    return new URL(request.url ?? '/', 'http://monitor');
  } catch {
    return undefined;
  }
}

/** The monitor view of a cluster. */
function sourceOf(cluster: MonitorTarget): MonitorSource {
  const provider = cluster as Partial<MonitorSourceProvider>;
  if (typeof provider[MONITOR_SOURCE] === 'function') return provider[MONITOR_SOURCE]();
  const source = cluster as Partial<MonitorSource>;
  if (typeof source.snapshot === 'function' && typeof source.onChange === 'function') return cluster as MonitorSource;
  throw new OptionError(
    `DispyHTTPServer: a cluster is a JobCluster or a SharedJobCluster, got ${cluster === null ? 'null' : typeof cluster}`,
  );
}

function readTls(certfile: string, keyfile: string | undefined): https.ServerOptions {
  const read = (option: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new OptionError(`DispyHTTPServer: option "${option}": ${file} cannot be read: ${(error as Error).message}`);
    }
  };
  const cert = read('certfile', certfile);
  return { cert, key: keyfile === undefined ? cert : read('keyfile', keyfile) };
}

function reply(response: ServerResponse, status: number, type: string, body: string | Buffer): void {
  if (response.headersSent) return;
  response.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body) });
  response.end(body);
}
