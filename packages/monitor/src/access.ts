import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import os from 'node:os';

/** Whether an address to serve on is this host only: `localhost`, 127.0.0.0/8 or ::1. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === 'localhost') return true;
  if (net.isIPv4(bare)) return bare.startsWith('127.');
  if (net.isIPv6(bare)) return bare === '::1' || /^::ffff:127\./i.test(bare);
  return false;
}

/** What a request may do: whether it proved the token, and, when it did by `?token=`, that the cookie must be set. */
export type Admission = { ok: true; setCookie: boolean } | { ok: false; why: string };

/**
 * The monitor's access rules: the token (given once as `?token=`, then kept in an HttpOnly,
 * SameSite=Strict cookie, as Jupyter does), the Host header (without a token, only addresses, `localhost`,
 * this host's name and `host`: a page of another site whose name resolves to 127.0.0.1 (DNS rebinding) is refused),
 * and the Origin of anything that changes state or opens a socket (never another site's).
 */
export class AccessGuard {
  /** Cookies are kept per host, not per port: each monitor on a host has its own, named by its port (set once listening). */
  cookieName = 'dispy-monitor';
  private readonly tokenHash?: Buffer;

  constructor(
    token: string | undefined,
    private readonly servedHost: string,
  ) {
    if (token !== undefined) this.tokenHash = hash(token);
  }

  /** Names the cookie by the port served. */
  listening(port: number): void {
    this.cookieName = `dispy-monitor-${port}`;
  }

  get hasToken(): boolean {
    return this.tokenHash !== undefined;
  }

  /** Checks a request's Host and token. */
  admit(request: IncomingMessage, url: URL): Admission {
    const host = request.headers.host;
    if (!host) return { ok: false, why: 'no Host header' };
    if (!this.tokenHash) {
      if (!this.hostAllowed(host)) return { ok: false, why: `Host ${host} is not this server's address` };
      return { ok: true, setCookie: false };
    }
    const given = url.searchParams.get('token');
    if (given !== null && this.matches(given)) return { ok: true, setCookie: true };
    const cookie = readCookie(request.headers.cookie, this.cookieName);
    if (cookie !== undefined && this.matches(cookie)) return { ok: true, setCookie: false };
    return { ok: false, why: 'the token is missing or wrong: open the address with ?token=' };
  }

  /** Whether a state-changing request (or a WebSocket) comes from a page of this server: its scheme (`secure`: https) and Host. */
  sameOrigin(request: IncomingMessage, secure: boolean): boolean {
    const origin = request.headers.origin;
    const host = request.headers.host;
    if (!origin || !host) return false;
    try {
      const url = new URL(origin);
      return url.protocol === (secure ? 'https:' : 'http:') && url.host === host;
    } catch {
      return false;
    }
  }

  /** The Set-Cookie header that keeps the token. */
  cookieHeader(token: string, secure: boolean): string {
    return `${this.cookieName}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
  }

  private matches(candidate: string): boolean {
    return this.tokenHash !== undefined && timingSafeEqual(hash(candidate), this.tokenHash);
  }

  private hostAllowed(hostHeader: string): boolean {
    let hostname: string;
    try {
      hostname = new URL(`http://${hostHeader}`).hostname.replace(/^\[|\]$/g, '');
    } catch {
      return false;
    }
    const name = hostname.toLowerCase();
    return (
      name === 'localhost' || net.isIP(hostname) !== 0 || name === this.servedHost.toLowerCase() || name === os.hostname().toLowerCase()
    );
  }
}

function hash(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const at = part.indexOf('=');
    if (at < 0 || part.slice(0, at).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(at + 1).trim());
    } catch {
      return undefined;
    }
  }
  return undefined;
}
