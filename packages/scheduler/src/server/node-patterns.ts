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
