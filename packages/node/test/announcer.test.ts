import os from 'node:os';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from '@dispy/protocol/internal';
import { Announcer } from '../src/discovery/announcer.js';

type Info = os.NetworkInterfaceInfo;
const v4 = (address: string): Info => ({
  address,
  netmask: '255.255.255.0',
  family: 'IPv4',
  mac: '00:00:00:00:00:00',
  internal: false,
  cidr: null,
});
const v6 = (address: string): Info => ({
  address,
  netmask: 'ffff:ffff:ffff:ffff::',
  family: 'IPv6',
  mac: '00:00:00:00:00:00',
  internal: false,
  cidr: null,
  scopeid: 0,
});
const logger: Logger = { level: 'debug', debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
const GROUP6 = 'ff02::b409:3171:9705:5134:6159';

afterEach(() => {
  vi.restoreAllMocks();
});

/** Where an announcer of these hosts would send, without sending (targets() only reads the interfaces). */
function targets(options: { hosts?: string[]; extHosts?: string[]; ipv4Multicast?: boolean; schedulerHost?: string }) {
  vi.spyOn(os, 'networkInterfaces').mockReturnValue({
    lo: [{ ...v4('127.0.0.1'), internal: true }],
    eth0: [v4('10.1.0.5'), v6('fe80::5')],
    eth1: [v4('10.2.0.5')],
    eth2: [v6('fd00:2::5'), v6('fe80::25')],
  });
  return new Announcer({ secret: 's', hosts: [], extHosts: [], tcpPort: 51348, logger, ...options }).targets();
}

describe('Announcer', () => {
  it('serving every interface, announces on each IPv4 network by its broadcast, and by IPv6 multicast where a link has IPv6 alone', () => {
    expect(targets({})).toEqual([
      { host: '10.1.0.255', port: 51347, tcpHost: '' },
      { host: '10.2.0.255', port: 51347, tcpHost: '' },
      { host: `${GROUP6}%eth2`, port: 51347, tcpHost: '' },
    ]);
  });

  it('serving named addresses, announces there only, each with its address or the --ext-host paired with it', () => {
    expect(targets({ hosts: ['10.2.0.5', 'fe80::5%eth0'], extHosts: ['203.0.113.1'] })).toEqual([
      { host: '10.2.0.255', port: 51347, tcpHost: '203.0.113.1' },
      { host: `${GROUP6}%eth0`, port: 51347, tcpHost: '203.0.113.1' },
    ]);
    expect(targets({ hosts: ['10.2.0.5', 'fe80::5%eth0'], extHosts: ['203.0.113.1', '203.0.113.2'] })[1]).toMatchObject({
      tcpHost: '203.0.113.2',
    });
    expect(targets({ hosts: ['10.1.0.5', 'fd00:2::5'] })).toEqual([
      { host: '10.1.0.255', port: 51347, tcpHost: '10.1.0.5' },
      { host: `${GROUP6}%eth2`, port: 51347, tcpHost: 'fd00:2::5' },
    ]);
  });

  it('announces to the IPv4 multicast group from each interface with --ipv4-udp-multicast, and to --scheduler-host; loopback alone announces nowhere else', () => {
    expect(targets({ hosts: ['10.1.0.5'], ipv4Multicast: true, schedulerHost: '[fd00::9]' })).toEqual([
      { host: 'fd00::9', port: 51347, tcpHost: '10.1.0.5' },
      { host: '239.255.61.59', port: 51347, tcpHost: '10.1.0.5', via: '10.1.0.5' },
    ]);
    expect(targets({ hosts: ['127.0.0.1'], schedulerHost: '127.0.0.1:4000' })).toEqual([
      { host: '127.0.0.1', port: 4000, tcpHost: '127.0.0.1' },
    ]);
  });
});
