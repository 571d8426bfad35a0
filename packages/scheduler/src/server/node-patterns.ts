import { lookup } from 'node:dns/promises';
import net from 'node:net';

/**
 * Whether a node matches one of a SharedJobCluster's `nodes` (as its Setup lists them): `*`
 * patterns over the address (`192.168.1.*`), an address, or a host name (the node's name or
 * address). An empty list matches every node.
 */
export function matchesNodes(patterns: readonly string[], address: string, name: string): boolean {
  if (patterns.length === 0) return true;
  return patterns.some((pattern) => {
    if (pattern.includes('*')) {
      const expression = pattern
        .split('*')
        .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*');
      return new RegExp(`^${expression}$`, 'i').test(address);
    }
    return pattern === address || pattern.toLowerCase() === name.toLowerCase();
  });
}

/**
 * A client's `nodes`, with host names also as their addresses (a name that does not resolve stays
 * a name, and `unresolved` is told); none (every node) when one is `*`.
 */
export async function resolveNodePatterns(patterns: string[], unresolved: (name: string) => void): Promise<string[]> {
  const all = [...patterns];
  if (patterns.includes('*')) return [];
  for (const pattern of patterns) {
    if (pattern.includes('*') || net.isIP(pattern)) continue;
    try {
      all.push(...(await lookup(pattern, { all: true })).map(({ address }) => address));
    } catch {
      unresolved(pattern);
    }
  }
  return all;
}
