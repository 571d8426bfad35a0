import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { OptionError } from '@dispy/protocol';
import type { DispyNode } from '../node/dispy-node.js';

/**
 * Finds the key (host:port) of a node the cluster knows, from what a user passes to the
 * node methods: a DispyNode, an IP address, or the node's name or host name.
 */
export async function findNodeKey(node: DispyNode | string, known: Iterable<DispyNode>): Promise<string | undefined> {
  if (typeof node !== 'string' && (typeof node !== 'object' || node === null || typeof node.ipAddr !== 'string')) {
    throw new OptionError(`a node is a DispyNode, an IP address or a host name, got ${node === null ? 'null' : typeof node}`);
  }
  const nodes = [...known];
  if (typeof node !== 'string') {
    const match = nodes.find((n) => n.ipAddr === node.ipAddr && n.port === node.port);
    return match && `${match.ipAddr}:${match.port}`;
  }
  const byName = nodes.find((n) => n.ipAddr === node || n.name === node);
  if (byName) return `${byName.ipAddr}:${byName.port}`;
  if (net.isIP(node)) return undefined;
  try {
    const { address } = await lookup(node);
    const byAddress = nodes.find((n) => n.ipAddr === address);
    return byAddress && `${byAddress.ipAddr}:${byAddress.port}`;
  } catch {
    return undefined;
  }
}
