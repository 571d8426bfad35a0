import net from 'node:net';
import os from 'node:os';

/**
 * The IPv4 group of discovery by multicast (the `ipv4UdpMulticast` option; dispy's
 * `IPv4MulticastGroup`): an administratively scoped address, kept inside the site.
 */
export const IPV4_MULTICAST_GROUP = '239.255.61.59';
/**
 * The IPv6 group of discovery, always by multicast: dispy's group (ff05::b409:3171:9705:5134:6159)
 * with link scope (ff02), so pings and announcements stay on the link, as broadcasts do.
 */
export const IPV6_MULTICAST_GROUP = 'ff02::b409:3171:9705:5134:6159';

/** True for 0.0.0.0 and ::, which mean "every interface". */
export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/** An address without its IPv6 scope (`fe80::1%eth0` → `fe80::1`). */
export function withoutScope(address: string): string {
  const at = address.indexOf('%');
  return at < 0 ? address : address.slice(0, at);
}

/** True for IPv6 link-local addresses (fe80::/10), which need a scope (`%eth0`) to be reached. */
export function isLinkLocal(address: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(address);
}

/**
 * Where to connect to a peer that named `host` in a datagram that came from `source`: `host`
 * itself, but a link-local `host` without scope takes the scope of the datagram's source (a scope
 * is the receiver's interface: the peer cannot know ours).
 */
export function withScopeOf(host: string, source: string): string {
  if (!isLinkLocal(host) || host.includes('%')) return host;
  const at = source.indexOf('%');
  return at < 0 ? host : `${host}${source.slice(at)}`;
}

/** A non-internal interface address, with its interface's name. */
export interface InterfaceAddress {
  name: string;
  address: string;
  netmask: string;
  family: 'IPv4' | 'IPv6';
}

/** Every non-internal interface address of this host, of `family` if given. */
export function interfaceAddresses(family?: 'IPv4' | 'IPv6'): InterfaceAddress[] {
  const out: InterfaceAddress[] = [];
  for (const [name, list] of Object.entries(os.networkInterfaces())) {
    for (const info of list ?? []) {
      if (info.internal || (family && info.family !== family)) continue;
      out.push({ name, address: info.address, netmask: info.netmask, family: info.family });
    }
  }
  return out;
}

/** The name of the interface that owns `address` (scope ignored), if any. */
export function interfaceOf(address: string): string | undefined {
  const bare = withoutScope(address);
  const scope = address.includes('%') ? address.slice(address.indexOf('%') + 1) : undefined;
  return interfaceAddresses().find((info) => info.address === bare && (scope === undefined || info.name === scope))?.name;
}

/**
 * The address of this machine that a peer at `remote` should connect to, when the node listens
 * on every interface: loopback for a loopback peer, else the address (of the peer's family) on
 * the peer's subnet (for a link-local peer, our link-local address on its interface, without scope).
 */
export function localAddressFacing(remote: string): string {
  if (remote.startsWith('127.') || remote === '::1') return remote === '::1' ? '::1' : '127.0.0.1';
  if (remote.startsWith('::ffff:') && net.isIPv4(remote.slice(7))) return localAddressFacing(remote.slice(7));
  if (net.isIPv6(withoutScope(remote))) {
    const candidates = interfaceAddresses('IPv6');
    if (isLinkLocal(remote)) {
      const scope = remote.includes('%') ? remote.slice(remote.indexOf('%') + 1) : undefined;
      const local = candidates.find((info) => isLinkLocal(info.address) && (scope === undefined || info.name === scope));
      if (local) return local.address;
    }
    for (const info of candidates) {
      if (!isLinkLocal(info.address) && sameSubnet6(info.address, remote, info.netmask)) return info.address;
    }
    return candidates.find((info) => !isLinkLocal(info.address))?.address ?? candidates[0]?.address ?? '::1';
  }
  const candidates = interfaceAddresses('IPv4');
  for (const info of candidates) {
    if (net.isIPv4(remote) && sameSubnet(info.address, remote, info.netmask)) return info.address;
  }
  return candidates[0]?.address ?? '127.0.0.1';
}

function toInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => (acc << 8) + Number(part), 0) >>> 0;
}

function sameSubnet(a: string, b: string, mask: string): boolean {
  const m = toInt(mask);
  return (toInt(a) & m) >>> 0 === (toInt(b) & m) >>> 0;
}

/** The 16 bytes of an IPv6 address (no scope, no embedded IPv4 expected). */
function toBytes6(address: string): number[] {
  const [head = '', tail = ''] = withoutScope(address).split('::');
  const part = (text: string): number[] => (text ? text.split(':').map((group) => parseInt(group, 16)) : []);
  const left = part(head);
  const right = address.includes('::') ? part(tail) : [];
  const groups = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  return groups.flatMap((group) => [group >> 8, group & 255]);
}

function sameSubnet6(a: string, b: string, mask: string): boolean {
  const [x, y, m] = [toBytes6(a), toBytes6(b), toBytes6(mask)];
  return m.every((byte, i) => ((x[i] ?? 0) & byte) === ((y[i] ?? 0) & byte));
}

/** The directed broadcast address of the interface that owns `address`, if any. */
export function broadcastAddressOf(address: string): string | undefined {
  for (const info of interfaceAddresses('IPv4')) {
    if (info.address !== address) continue;
    const broadcast = (toInt(info.address) | (~toInt(info.netmask) >>> 0)) >>> 0;
    return [24, 16, 8, 0].map((shift) => (broadcast >>> shift) & 255).join('.');
  }
  return undefined;
}

/** Directed broadcast addresses of every IPv4 interface that has one (not loopback). */
export function broadcastAddresses(): string[] {
  return [...new Set(interfaceAddresses('IPv4').map((info) => broadcastAddressOf(info.address)!))];
}

/** Names of the interfaces with an IPv6 address (not loopback): where IPv6 discovery multicasts. */
export function ipv6Interfaces(): string[] {
  return [...new Set(interfaceAddresses('IPv6').map((info) => info.name))];
}

/**
 * Names of the interfaces with IPv6 but no IPv4 address: where discovery to every interface
 * multicasts on IPv6. A dual-stack network is searched by IPv4 alone, so that a node is not found
 * twice (once per family); name an IPv6 address (ipAddr, -i) to search it by IPv6.
 */
export function ipv6OnlyInterfaces(): string[] {
  const withIpv4 = new Set(interfaceAddresses('IPv4').map((info) => info.name));
  return ipv6Interfaces().filter((name) => !withIpv4.has(name));
}
