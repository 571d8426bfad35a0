import { describe, expect, it } from 'vitest';
import { parseHostPort } from './host-port.js';
import { relaySettings } from './net-relay-options.js';

describe('relay options', () => {
  it('fill in the defaults: the relay hears clients on the node port, announcements on the client port', () => {
    expect(relaySettings({})).toMatchObject({
      hosts: [],
      nodePort: 51348,
      relayPort: 51348,
      schedulerPort: 51347,
      secret: '',
      clientTtlMs: 600_000,
    });
    expect(relaySettings({ nodePort: 9701 })).toMatchObject({ relayPort: 9701 });
  });

  it('read HOST and HOST:PORT, IPv6 bare or in brackets, with the default port', () => {
    expect(relaySettings({ nodes: ['127.0.2.7', '127.0.2.8:9000', '[::1]:9001', '::1'], schedulerNodes: ['sched'] })).toMatchObject({
      nodes: [
        { host: '127.0.2.7', port: 51348 },
        { host: '127.0.2.8', port: 9000 },
        { host: '::1', port: 9001 },
        { host: '::1', port: 51348 },
      ],
      schedulerNodes: [{ host: 'sched', port: 51347 }],
    });
  });

  it.each([
    [{ nodePort: 0 }, /nodePort must be an integer 1\.\.65535, got 0/],
    [{ relayPort: 70000 }, /relayPort must be an integer 0\.\.65535, got 70000/],
    [{ hosts: ['myhost'] }, /hosts must be IP addresses of this host, got "myhost"/],
    [{ nodes: ['127.0.2.7:x'] }, /the port of "127\.0\.2\.7:x" must be an integer/],
    [{ clientTtl: 0 }, /clientTtl must be a number of seconds ≥ 1, got 0/],
    [{ nodez: [] }, /unknown option "nodez"/],
  ])('refuse %j, saying what is accepted', (options, message) => {
    expect(() => relaySettings(options as never)).toThrow(message);
  });

  it('parseHostPort refuses an empty host', () => {
    expect(() => parseHostPort(':80', 1, 'nodes')).toThrow(/HOST or HOST:PORT/);
  });
});
