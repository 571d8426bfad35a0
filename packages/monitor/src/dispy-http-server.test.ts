import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { DispyError, ErrorCode, OptionError } from '@dispy/protocol';
import { DispyHTTPServer } from './dispy-http-server.js';
import { FakeSource } from './fake-source.test-helper.js';
import type { ServerMessage } from './monitor-hub.js';

const servers: DispyHTTPServer[] = [];
const sockets: WebSocket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.terminate();
  await Promise.all(servers.splice(0).map((server) => server.shutdown()));
});

async function serve(source: FakeSource, options: ConstructorParameters<typeof DispyHTTPServer>[1] = {}) {
  const server = new DispyHTTPServer(source, { port: 0, loglevel: 'silent', ...options });
  servers.push(server);
  const { port } = await server.start();
  return { server, base: `http://127.0.0.1:${port}`, port };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Opens the live stream; resolves its first message, or rejects with the HTTP status that refused it. */
function openStream(url: string, headers: Record<string, string>): Promise<{ socket: WebSocket; first: ServerMessage }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers });
    sockets.push(socket);
    socket.once('message', (data: Buffer) => resolve({ socket, first: JSON.parse(data.toString('utf8')) as ServerMessage }));
    socket.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    socket.once('error', reject);
  });
}

function nextMessage(socket: WebSocket): Promise<ServerMessage> {
  return new Promise((resolve) => socket.once('message', (data: Buffer) => resolve(JSON.parse(data.toString('utf8')) as ServerMessage)));
}

const action = (origin: string, body: unknown, cookie?: string) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', origin, ...(cookie ? { cookie } : {}) },
  body: JSON.stringify(body),
});

describe('DispyHTTPServer options', () => {
  it('names a wrong or unknown option', () => {
    expect(() => new DispyHTTPServer([], { port: 70000 })).toThrow(/option "port": must be an integer 0..65535, got 70000/);
    expect(() => new DispyHTTPServer([], { show_job_args: true } as never)).toThrow(
      /unknown option "show_job_args"; did you mean "showJobArgs"/,
    );
    expect(() => new DispyHTTPServer([], { poll_sec: 5 } as never)).toThrow(OptionError);
    expect(() => new DispyHTTPServer([], { token: 'short' })).toThrow(/option "token": must be at least 8 characters/);
  });

  it('refuses a non-loopback address without a token, unless allowed', async () => {
    expect(() => new DispyHTTPServer([], { host: '0.0.0.0', port: 0 })).toThrow(/allowRemoteWithoutToken/);
    const server = new DispyHTTPServer([], { host: '0.0.0.0', port: 0, allowRemoteWithoutToken: true, loglevel: 'silent' });
    servers.push(server);
    await expect(server.start()).resolves.toMatchObject({ host: '0.0.0.0' });
  });

  it('rejects start() clearly when the port is taken', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      const server = new DispyHTTPServer([], { port, loglevel: 'silent' });
      servers.push(server);
      const error: unknown = await server.start().catch((e: unknown) => e);
      expect(DispyError.isInstance(error) && error.code).toBe(ErrorCode.START);
      expect((error as Error).message).toMatch(`could not listen on 127.0.0.1:${port}: the port is in use`);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});

describe('DispyHTTPServer access', () => {
  it('serves the page and the state without a token on loopback', async () => {
    const source = new FakeSource('plain');
    const { base } = await serve(source);
    const page = await request(`${base}/`, { headers: {} });
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.body).toContain('<script src="/monitor.js"');
    const state = JSON.parse((await request(`${base}/api/state`)).body) as { clusters: Array<{ snapshot: { name: string } }> };
    expect(state.clusters.map((c) => c.snapshot.name)).toEqual(['plain']);
    expect((await request(`${base}/../package.json`)).status).toBe(404);
  });

  it('refuses a Host that is not an address without a token (DNS rebinding)', async () => {
    const { base } = await serve(new FakeSource());
    expect((await request(`${base}/api/state`, { headers: { host: 'evil.example:8181' } })).status).toBe(403);
  });

  it('answers 403 without the token, takes ?token= once into an HttpOnly cookie, then the cookie', async () => {
    const token = 'a-long-enough-token';
    const { base, port } = await serve(new FakeSource(), { token });
    for (const path of ['/', '/monitor.js', '/api/state', '/nothing']) expect((await request(`${base}${path}`)).status).toBe(403);
    expect((await request(`${base}/api/state?token=wrong-token-here`)).status).toBe(403);
    const first = await request(`${base}/?token=${token}`);
    expect(first.status).toBe(303);
    expect(first.headers.location).toBe('/');
    const cookie = first.headers['set-cookie']?.[0] ?? '';
    expect(cookie).toMatch(new RegExp(`^dispy-monitor-${port}=`));
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    const pair = cookie.split(';')[0]!;
    expect((await request(`${base}/api/state`, { headers: { cookie: pair } })).status).toBe(200);
    expect((await request(`${base}/api/state`, { headers: { cookie: `dispy-monitor-${port}=wrong` } })).status).toBe(403);
  });

  it('refuses the WebSocket without the token or from another origin', async () => {
    const token = 'a-long-enough-token';
    const { base, port } = await serve(new FakeSource(), { token });
    const ws = `ws://127.0.0.1:${port}/ws`;
    const cookie = `dispy-monitor-${port}=${token}`;
    await expect(openStream(ws, { origin: base })).rejects.toThrow('HTTP 403');
    await expect(openStream(ws, { origin: 'http://evil.example', cookie })).rejects.toThrow('HTTP 403');
    const { first } = await openStream(ws, { origin: base, cookie });
    expect(first.type).toBe('state');
  });

  it('runs an action from its own page only, as JSON', async () => {
    const source = new FakeSource();
    const { base } = await serve(source);
    const cancel = { action: 'cancelJob', cluster: 'c1', job: '7' };
    expect((await request(`${base}/api/action`, action('http://evil.example', cancel))).status).toBe(403);
    expect(
      (await request(`${base}/api/action`, { ...action(base, cancel), headers: { origin: base, 'content-type': 'text/plain' } })).status,
    ).toBe(415);
    expect(source.actions).toEqual([]);
    const done = await request(`${base}/api/action`, action(base, cancel));
    expect(done.status).toBe(200);
    expect(source.actions).toEqual([{ cancelJob: '7' }]);
    const cpus = await request(`${base}/api/action`, action(base, { action: 'setNodeCpus', cluster: 'c1', node: '127.0.0.1:9', cpus: 1 }));
    expect(JSON.parse(cpus.body)).toEqual({ ok: true, cpus: 1 });
    const bad = await request(`${base}/api/action`, action(base, { action: 'rm -rf', cluster: 'c1' }));
    expect(bad.status).toBe(400);
    const missing = await request(`${base}/api/action`, action(base, { ...cancel, cluster: 'c9' }));
    expect(missing.status).toBe(404);
  });
});

describe('DispyHTTPServer stream', () => {
  it('sends the whole state on connect, then coalesced changes; a browser that reconnects gets the state again', async () => {
    const source = new FakeSource('live');
    const { base, port } = await serve(source);
    const ws = `ws://127.0.0.1:${port}/ws`;
    const { socket, first } = await openStream(ws, { origin: base });
    expect(first).toMatchObject({ type: 'state', clusters: [{ id: 'c1', snapshot: { name: 'live' } }] });
    const next = nextMessage(socket);
    for (let i = 1; i <= 50; i++) source.change((state) => (state.jobs.submitted = i));
    const update = await next;
    expect(update).toMatchObject({ type: 'update', clusters: [{ id: 'c1', snapshot: { jobs: { submitted: 50 } } }] });
    socket.terminate();
    const again = await openStream(ws, { origin: base });
    expect(again.first).toMatchObject({ type: 'state', clusters: [{ snapshot: { jobs: { submitted: 50 } } }] });
  });

  it('adds and removes clusters, and stops listening to them at shutdown', async () => {
    const one = new FakeSource('one');
    const two = new FakeSource('two');
    const { server, base, port } = await serve(one);
    server.addCluster(two);
    server.addCluster(two);
    const { socket, first } = await openStream(`ws://127.0.0.1:${port}/ws`, { origin: base });
    expect(first.clusters.map((c) => c.snapshot.name)).toEqual(['one', 'two']);
    const next = nextMessage(socket);
    expect(server.delCluster(one)).toBe(true);
    expect(server.delCluster(one)).toBe(false);
    expect(await next).toMatchObject({ type: 'update', removed: ['c1'] });
    expect(one.watchers).toBe(0);
    const closed = new Promise((resolve) => socket.once('close', resolve));
    await server.shutdown();
    await closed;
    expect(two.watchers).toBe(0);
  });
});

describe('DispyHTTPServer against malformed and foreign requests', () => {
  /** Sends `head` as it is (no client normalizes the path) and resolves the status line. */
  function raw(port: number, head: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write(head));
      let answer = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (answer += chunk));
      socket.on('close', () => resolve(answer.split('\r\n')[0] ?? ''));
      socket.on('error', reject);
      socket.setTimeout(5000, () => socket.destroy());
    });
  }

  it('answers 400 to paths that are not URLs (//, //%zz), for pages and WebSockets, and keeps serving', async () => {
    const { port, base } = await serve(new FakeSource());
    for (const path of ['//', '//%zz', '/\\/']) {
      expect(await raw(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`)).toBe(
        'HTTP/1.1 400 Bad Request',
      );
      const upgrade =
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Origin: http://127.0.0.1:${port}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
      expect(await raw(port, upgrade)).toBe('HTTP/1.1 403 Forbidden');
    }
    expect((await request(`${base}/api/state`)).status).toBe(200);
  });

  it('redirects ?token= to a path of its own, never to another site (//host)', async () => {
    const { port } = await serve(new FakeSource(), { token: 'a token for the redirect test' });
    const answer = await raw(
      port,
      `GET /.//evil.example/x?token=a%20token%20for%20the%20redirect%20test HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
    );
    expect(answer).toBe('HTTP/1.1 303 See Other');
    const location = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () =>
        socket.write(
          `GET /.//evil.example/x?token=a%20token%20for%20the%20redirect%20test HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
        ),
      );
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('close', () => resolve(/\r\nlocation: ([^\r]*)/i.exec(text)?.[1] ?? ''));
      socket.on('error', reject);
    });
    expect(location.startsWith('/')).toBe(true);
    expect(location.startsWith('//')).toBe(false);
  });

  it('refuses an action whose Origin has another scheme, and strips job arguments without showJobArgs', async () => {
    const source = new FakeSource();
    source.jobs = [{ id: '1', key: '1', startTime: 0, args: 'secret argument' }];
    const { base, port } = await serve(source);
    const foreign = await request(
      `${base}/api/action`,
      action(`https://127.0.0.1:${port}`, { action: 'closeNode', cluster: 'x', node: 'n' }),
    );
    expect(foreign.status).toBe(403);
    const state = JSON.parse((await request(`${base}/api/state`)).body) as { clusters: { id: string }[] };
    const jobs = await request(`${base}/api/jobs?cluster=${state.clusters[0]!.id}&node=n`);
    expect(jobs.status).toBe(200);
    expect(jobs.body).not.toContain('secret argument');
  });
});
