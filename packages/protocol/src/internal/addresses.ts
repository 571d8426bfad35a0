import net from 'node:net';
import os from 'node:os';

/** True for 0.0.0.0 and ::, which mean "every interface". */
export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/**
 * The address of this machine that a peer at `remote` should connect to, when the node listens
 * on every interface: loopback for a loopback peer, else the interface on the peer's subnet.
 */
export function localAddressFacing(remote: string): string {
  if (remote.startsWith('127.') || remote === '::1') return remote === '::1' ? '::1' : '127.0.0.1';
  const candidates = Object.values(os.networkInterfaces()).flatMap((list) => list ?? []);
  for (const info of candidates) {
    if (info.internal || info.family !== 'IPv4' || !net.isIPv4(remote)) continue;
    if (sameSubnet(info.address, remote, info.netmask)) return info.address;
  }
  return candidates.find((info) => !info.internal && info.family === 'IPv4')?.address ?? '127.0.0.1';
}

function toInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => (acc << 8) + Number(part), 0) >>> 0;
}

function sameSubnet(a: string, b: string, mask: string): boolean {
  const m = toInt(mask);
  return (toInt(a) & m) >>> 0 === (toInt(b) & m) >>> 0;
}

/** The directed broadcast address of the interface that owns `address`, if any. */
export function broadcastAddressOf(address: string): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const info of list ?? []) {
      if (info.family !== 'IPv4' || info.internal || info.address !== address) continue;
      const broadcast = (toInt(info.address) | (~toInt(info.netmask) >>> 0)) >>> 0;
      return [24, 16, 8, 0].map((shift) => (broadcast >>> shift) & 255).join('.');
    }
  }
  return undefined;
}

/** Directed broadcast addresses of every IPv4 interface that has one (not loopback). */
export function broadcastAddresses(): string[] {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) {
    for (const info of list ?? []) {
      if (info.family === 'IPv4' && !info.internal) out.add(broadcastAddressOf(info.address)!);
    }
  }
  return [...out];
}
