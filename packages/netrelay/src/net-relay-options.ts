import net from 'node:net';
import { DEFAULT_CLIENT_PORT, DEFAULT_NODE_PORT, OptionError } from '@dispy/protocol';
import { LOG_LEVELS, type LogLevel } from '@dispy/protocol/internal';
import { parseHostPort, type HostPort } from './host-port.js';

/** Seconds a client (or scheduler) is remembered after its last ping, by default. */
export const DEFAULT_CLIENT_TTL = 600;

/** Options of `DispyNetRelay` (the flags of `dispynetrelay`). */
export interface DispyNetRelayOptions {
  /**
   * Local addresses: clients' pings are heard on each, nodes' announcements too, and each one's
   * network is pinged on its directed broadcast address (default: every interface, each
   * IPv4 network's broadcast address).
   */
  hosts?: string[];
  /** The address clients reach this relay at, when it is not one of its own (NAT): told to clients in announcements. */
  extHost?: string;
  /** The nodes' port: the port this relay pings on its networks (default 51348). */
  nodePort?: number;
  /**
   * UDP port where clients' pings are heard (default: `nodePort`, so that a client lists the relay's
   * host in `nodes` like a node's). A dispynode on the same host holds that port: give the relay
   * another and list it as `new NodeAllocate(host, { port })`.
   */
  relayPort?: number;
  /** UDP port where nodes' announcements are heard, and where `schedulerNodes` listen (default 51347, the client port). */
  schedulerPort?: number;
  /**
   * Clients or dispyschedulers (`HOST` or `HOST:PORT`, default port `schedulerPort`) told of this
   * relay at start and every minute, and always told of nodes that announce themselves: they
   * need not list the relay.
   */
  schedulerNodes?: string[];
  /**
   * Nodes pinged by address (`HOST` or `HOST:PORT`, default port `nodePort`) besides the
   * broadcast: for networks without broadcast (cloud networks).
   */
  nodes?: string[];
  /** The secret of the clients and nodes; the relay passes on nothing that does not prove it (default: none). */
  secret?: string;
  /** Seconds a client, and a node that announced itself, is remembered after it was last heard (default 600). */
  clientTtl?: number;
  loglevel?: LogLevel;
}

/** The options checked, with their defaults. */
export interface RelaySettings {
  hosts: string[];
  extHost?: string;
  nodePort: number;
  relayPort: number;
  schedulerPort: number;
  schedulerNodes: HostPort[];
  nodes: HostPort[];
  secret: string;
  clientTtlMs: number;
  loglevel: LogLevel;
}

function checkPort(name: string, value: unknown, min: number): void {
  if (value !== undefined && !(Number.isInteger(value) && (value as number) >= min && (value as number) <= 65535)) {
    throw new OptionError(`dispynetrelay: ${name} must be an integer ${min}..65535, got ${JSON.stringify(value)}`);
  }
}

function checkStrings(name: string, value: unknown): void {
  if (value !== undefined && !(Array.isArray(value) && value.every((item) => typeof item === 'string' && item.length > 0))) {
    throw new OptionError(`dispynetrelay: ${name} must be a list of non-empty strings, got ${JSON.stringify(value)}`);
  }
}

/**
 * Checks the options and fills in the defaults.
 * @throws OptionError naming the option and its value when one is wrong
 */
export function relaySettings(options: DispyNetRelayOptions): RelaySettings {
  if (typeof options !== 'object' || options === null) throw new OptionError('dispynetrelay: options must be an object');
  const known = new Set([
    'hosts',
    'extHost',
    'nodePort',
    'relayPort',
    'schedulerPort',
    'schedulerNodes',
    'nodes',
    'secret',
    'clientTtl',
    'loglevel',
  ]);
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw new OptionError(`dispynetrelay: unknown option ${JSON.stringify(key)}; known: ${[...known].join(', ')}`);
  }
  checkStrings('hosts', options.hosts);
  checkStrings('schedulerNodes', options.schedulerNodes);
  checkStrings('nodes', options.nodes);
  for (const host of options.hosts ?? []) {
    if (!net.isIP(host)) throw new OptionError(`dispynetrelay: hosts must be IP addresses of this host, got ${JSON.stringify(host)}`);
  }
  if (options.extHost !== undefined && (typeof options.extHost !== 'string' || options.extHost === '')) {
    throw new OptionError(`dispynetrelay: extHost must be a non-empty string, got ${JSON.stringify(options.extHost)}`);
  }
  checkPort('nodePort', options.nodePort, 1);
  checkPort('relayPort', options.relayPort, 0);
  checkPort('schedulerPort', options.schedulerPort, 0);
  if (options.secret !== undefined && typeof options.secret !== 'string') throw new OptionError('dispynetrelay: secret must be a string');
  const ttl = options.clientTtl;
  if (ttl !== undefined && !(typeof ttl === 'number' && Number.isFinite(ttl) && ttl >= 1)) {
    throw new OptionError(`dispynetrelay: clientTtl must be a number of seconds ≥ 1, got ${JSON.stringify(ttl)}`);
  }
  if (options.loglevel !== undefined && !LOG_LEVELS.includes(options.loglevel)) {
    throw new OptionError(`dispynetrelay: loglevel must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(options.loglevel)}`);
  }
  const nodePort = options.nodePort ?? DEFAULT_NODE_PORT;
  const schedulerPort = options.schedulerPort ?? DEFAULT_CLIENT_PORT;
  return {
    hosts: options.hosts ?? [],
    extHost: options.extHost,
    nodePort,
    relayPort: options.relayPort ?? nodePort,
    schedulerPort,
    schedulerNodes: (options.schedulerNodes ?? []).map((text) => parseHostPort(text, schedulerPort, 'dispynetrelay: schedulerNodes')),
    nodes: (options.nodes ?? []).map((text) => parseHostPort(text, nodePort, 'dispynetrelay: nodes')),
    secret: options.secret ?? '',
    clientTtlMs: (ttl ?? DEFAULT_CLIENT_TTL) * 1000,
    loglevel: options.loglevel ?? 'info',
  };
}
