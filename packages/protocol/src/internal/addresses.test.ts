import os from 'node:os';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  broadcastAddresses,
  interfaceOf,
  ipv6OnlyInterfaces,
  isLinkLocal,
  localAddressFacing,
  withScopeOf,
  withoutScope,
} from './addresses.js';

type Info = os.NetworkInterfaceInfo;
const v4 = (address: string, netmask = '255.255.255.0'): Info => ({
  address,
  netmask,
  family: 'IPv4',
  mac: '00:00:00:00:00:00',
  internal: false,
  cidr: null,
});
const v6 = (address: string, netmask = 'ffff:ffff:ffff:ffff::'): Info => ({
  address,
  netmask,
  family: 'IPv6',
  mac: '00:00:00:00:00:00',
  internal: false,
  cidr: null,
  scopeid: 0,
});

/** A host on two IPv4 networks (eth0 dual-stack) and one IPv6-only network (eth2). */
function twoNetworks(): void {
  vi.spyOn(os, 'networkInterfaces').mockReturnValue({
    lo: [{ ...v4('127.0.0.1', '255.0.0.0'), internal: true }],
    eth0: [v4('10.1.0.5'), v6('fd00:1::5'), v6('fe80::5')],
    eth1: [v4('10.2.0.5', '255.255.0.0')],
    eth2: [v6('fd00:2::5'), v6('fe80::25')],
  });
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('address helpers', () => {
  it('says which addresses are link-local, and moves a scope from a datagram’s source to a link-local host', () => {
    expect(isLinkLocal('fe80::1')).toBe(true);
    expect(isLinkLocal('febf::1')).toBe(true);
    expect(isLinkLocal('fec0::1')).toBe(false);
    expect(isLinkLocal('fd00::1')).toBe(false);
    expect(withoutScope('fe80::1%eth0')).toBe('fe80::1');
    expect(withScopeOf('fe80::1', 'fe80::2%eth3')).toBe('fe80::1%eth3');
    // A host with a scope keeps it; other addresses take none.
    expect(withScopeOf('fe80::1%eth1', 'fe80::2%eth3')).toBe('fe80::1%eth1');
    expect(withScopeOf('fd00::1', 'fe80::2%eth3')).toBe('fd00::1');
    expect(withScopeOf('10.0.0.1', '10.0.0.2')).toBe('10.0.0.1');
  });

  it('answers a peer with the address on its network, of its family', () => {
    twoNetworks();
    expect(localAddressFacing('10.1.0.9')).toBe('10.1.0.5');
    expect(localAddressFacing('10.2.200.9')).toBe('10.2.0.5');
    expect(localAddressFacing('::ffff:10.2.0.9')).toBe('10.2.0.5');
    expect(localAddressFacing('fd00:2::77')).toBe('fd00:2::5');
    expect(localAddressFacing('fd00:1::77')).toBe('fd00:1::5');
    // A link-local peer gets the link-local address of the interface its scope names.
    expect(localAddressFacing('fe80::99%eth2')).toBe('fe80::25');
    expect(localAddressFacing('fe80::99%eth0')).toBe('fe80::5');
    expect(localAddressFacing('127.0.0.9')).toBe('127.0.0.1');
    expect(localAddressFacing('::1')).toBe('::1');
  });

  it('finds interfaces, directed broadcast addresses, and the interfaces with IPv6 alone', () => {
    twoNetworks();
    expect(broadcastAddresses()).toEqual(['10.1.0.255', '10.2.255.255']);
    expect(interfaceOf('10.2.0.5')).toBe('eth1');
    expect(interfaceOf('fe80::25%eth2')).toBe('eth2');
    expect(interfaceOf('fe80::25%eth0')).toBeUndefined();
    expect(interfaceOf('10.9.9.9')).toBeUndefined();
    expect(ipv6OnlyInterfaces()).toEqual(['eth2']);
  });
});
