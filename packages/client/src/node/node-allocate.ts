import net from 'node:net';
import { OptionError } from '@dispy/protocol';
import type { DispyNodeAvailInfo } from './dispy-node.js';

export interface NodeAllocateOptions {
  /** Node port, when it is not the cluster's `nodePort`. */
  port?: number;
  /** CPUs to use: 0 all, negative that many fewer than the node has. */
  cpus?: number;
  /** Files sent, with the cluster's depends files, to the nodes this allocation chooses. */
  depends?: string[];
  /** Arguments to the cluster's `setup` on the nodes this allocation chooses. */
  setupArgs?: unknown[];
}

/**
 * Chooses nodes, and how many of their CPUs, for a cluster. `host` is a host name, an IP
 * address, or a pattern with `*` wildcards (`'192.168.3.*'`, `'*'`). Subclass and override
 * `allocate` to decide per node from its name, CPUs, availability and platform.
 * @throws OptionError when `host` is not a non-empty string
 */
export class NodeAllocate {
  readonly host: string;
  readonly port: number | undefined;
  readonly cpus: number;
  depends: string[];
  setupArgs: unknown[];
  /** @internal Addresses the cluster resolved `host` to, when it is a host name. */
  readonly resolved = new Set<string>();
  private readonly pattern: RegExp;

  constructor(host: string, options: NodeAllocateOptions = {}) {
    if (typeof host !== 'string' || host.length === 0) {
      throw new OptionError(`NodeAllocate: host must be a non-empty string, got ${JSON.stringify(host)}`);
    }
    this.host = host;
    this.port = options.port;
    this.cpus = options.cpus ?? 0;
    this.depends = options.depends ?? [];
    this.setupArgs = options.setupArgs ?? [];
    // Anchored, unlike dispy's re.match: '192.168.1.1' must not also match 192.168.1.10.
    const escaped = host.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '[^]*');
    this.pattern = new RegExp(`^${escaped}$`, 'i');
  }

  /** True when the pattern is a wildcard (found by broadcast) rather than one host. */
  get isWildcard(): boolean {
    return this.host.includes('*');
  }

  /** True when `address` (or the node's `name`) matches this allocation's host. */
  matches(address: string, name?: string): boolean {
    if (this.pattern.test(address) || this.resolved.has(address)) return true;
    return !net.isIP(this.host) && name !== undefined && this.pattern.test(name);
  }

  /**
   * How many CPUs of the node at `ipAddr` to use: 0 skips the node. The default uses every
   * CPU of a matching node, or `cpus` of them (negative: that many fewer).
   */
  allocate(_cluster: unknown, ipAddr: string, name: string, cpus: number, _availInfo?: DispyNodeAvailInfo, _platform?: string): number {
    if (!this.matches(ipAddr, name)) return 0;
    if (this.cpus > 0) return Math.min(this.cpus, cpus);
    if (this.cpus < 0) return Math.max(0, cpus + this.cpus);
    return cpus;
  }
}
