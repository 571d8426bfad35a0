import net from 'node:net';
import { OptionError } from '@dispy/protocol';

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Reads `HOST`, `HOST:PORT`, `[IPV6]:PORT` or a bare IPv6 address; `port` when none is given.
 * @throws OptionError naming `what` and the value when the port is not an integer 1..65535
 */
export function parseHostPort(text: string, port: number, what: string): HostPort {
  let host = text.trim();
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(host);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
  } else if (!net.isIPv6(host) && host.includes(':')) {
    portText = host.slice(host.lastIndexOf(':') + 1);
    host = host.slice(0, host.lastIndexOf(':'));
  }
  if (host === '') throw new OptionError(`${what} must be HOST or HOST:PORT, got ${JSON.stringify(text)}`);
  if (portText === undefined) return { host, port };
  const parsed = Number(portText);
  if (!/^\d+$/.test(portText) || parsed < 1 || parsed > 65535) {
    throw new OptionError(`${what}: the port of ${JSON.stringify(text)} must be an integer 1..65535`);
  }
  return { host, port: parsed };
}
