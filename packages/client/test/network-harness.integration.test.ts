import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetwork, namespacesUnavailable, natUnavailable, type Network } from '../../../testing/network-namespaces.js';

// The harness itself (testing/network-namespaces.ts): routing through the router, masquerading,
// one forwarded port, and that what it forbids is forbidden, with plain TCP between namespaces.
const unavailable = namespacesUnavailable() ?? natUnavailable();

/** A TCP server in a namespace that answers each connection with the address it came from. */
const ECHO_PEER = `
const net = require('node:net');
const server = net.createServer((socket) => socket.end(socket.remoteAddress.replace(/^::ffff:/, '')));
server.listen(Number(process.argv[1]), process.argv[2] || undefined, () => process.stdout.write('listening\\n'));
`;
/** Connects to host:port and prints what it hears, or the error's code. */
const CONNECT = `
const net = require('node:net');
const socket = net.connect({ host: process.argv[1], port: Number(process.argv[2]) });
let heard = '';
socket.setTimeout(1500, () => { process.stdout.write('TIMEOUT'); process.exit(0); });
socket.on('data', (chunk) => (heard += chunk));
socket.on('end', () => process.stdout.write(heard));
socket.on('error', (error) => process.stdout.write(error.code ?? error.message));
`;

describe.skipIf(unavailable)(`the network namespace harness${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let network: Network;

  beforeAll(async () => {
    network = createNetwork({
      subnets: { a: {}, b: { ipv6: true } },
      hosts: { a1: ['a'], router: ['a', 'b'], b1: ['b'], b2: ['b'] },
      router: 'router',
    });
    for (const name of ['a1', 'b1']) {
      const server = network.spawnNode(name, ['-e', ECHO_PEER, '4000']);
      await new Promise<void>((resolve, reject) => {
        server.stdout!.once('data', () => resolve());
        server.once('exit', (code) => reject(new Error(`echo server in ${name} exited (${code})`)));
      });
    }
  });
  afterAll(async () => {
    await network?.destroy();
  });

  const connect = async (from: string, host: string, port = 4000): Promise<string> => {
    const result = await network.runProgram(from, '-e', [CONNECT, host, String(port)], { timeoutMs: 5000 });
    return result.stdout;
  };

  it('gives each host its addresses, and link-local ones with their scope', () => {
    expect(network.host('a1').address).toBe('10.77.1.1');
    expect(network.host('router').ipv4).toEqual({ a: '10.77.1.2', b: '10.77.2.2' });
    expect(network.host('b1').ipv6).toEqual({ b: 'fd77:0:0:2::3' });
    expect(network.host('b1').linkLocal('b')).toMatch(/^fe80::[0-9a-f:]+%eth0$/);
    expect(network.host('router').interfaces).toEqual({ a: 'eth0', b: 'eth1' });
  });

  it('routes between subnets through the router', async () => {
    expect(await connect('a1', network.host('b1').address)).toBe(network.host('a1').address);
    expect(await connect('b1', network.host('a1').address)).toBe(network.host('b1').address);
  });

  it('masquerades a subnet, and refuses new connections into it', async () => {
    network.masquerade('a');
    try {
      // b1 sees the router's address on b, and cannot reach a1 at all.
      expect(await connect('a1', network.host('b1').address)).toBe(network.host('router').ipv4.b);
      expect(await connect('b1', network.host('a1').address)).toBe('TIMEOUT');
    } finally {
      network.clearRules();
    }
  });

  it('forwards one port to a host inside, and refuses the rest', async () => {
    const outside = network.forwardPort('b1', 4001, 'a', 4000);
    try {
      expect(outside).toBe(network.host('router').ipv4.a);
      expect(await connect('a1', outside, 4001)).toBe(network.host('a1').address);
      expect(await connect('a1', network.host('b1').address)).toBe('TIMEOUT');
    } finally {
      network.clearRules();
    }
  });

  it('removes every namespace and process on destroy', async () => {
    const other = createNetwork({ subnets: { a: {} }, hosts: { x: ['a'], y: ['a'] } });
    const child = other.spawnNode('x', ['-e', 'setInterval(() => {}, 1000)']);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await other.destroy();
    await exited;
    expect(network.exec('a1', 'ip', ['netns', 'list'])).not.toContain(other.tag);
  });
});
