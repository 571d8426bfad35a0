import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createNetwork,
  namespacesUnavailable,
  natUnavailable,
  type Network,
  type ProgramResult,
} from '../../../testing/network-namespaces.js';
import type { NodeProcess } from '../../../testing/dispynode-process.mjs';

// NAT between namespaces (testing/network-namespaces.ts): subnet a (the client) and subnet b (a
// node), joined by a router that either forwards one port into b (a node behind NAT) or
// masquerades a (a client behind NAT); either way it refuses every other new connection into the
// subnet behind it.
const unavailable = namespacesUnavailable() ?? natUnavailable();
const clientScript = fileURLToPath(new URL('./fixtures/net-client.mjs', import.meta.url));
const NODE_PORT = 51348;
const SECRET = 'behind the router';

interface ClientOutput {
  nodes: string[];
  results: number[];
  ipAddrs: string[];
}

describe.skipIf(unavailable)(`NAT and port forwarding${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let network: Network;
  const nodes: NodeProcess[] = [];

  beforeAll(() => {
    network = createNetwork({ subnets: { a: {}, b: {} }, hosts: { client: ['a'], router: ['a', 'b'], nb: ['b'] }, router: 'router' });
  });
  afterEach(async () => {
    network.clearRules();
    await Promise.all(nodes.splice(0).map((node) => node.stop()));
  });
  afterAll(async () => {
    await network?.destroy();
  });

  const runClient = (options: Record<string, unknown>): Promise<ProgramResult> =>
    network.runProgram('client', clientScript, [JSON.stringify({ options: { secret: SECRET, nodePort: NODE_PORT, ...options } })], {
      timeoutMs: 30_000,
    });
  const parse = (result: ProgramResult): ClientOutput => {
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as ClientOutput;
  };

  it('reaches a node behind NAT through its forwarded port, at its --ext-host', async () => {
    const outside = network.forwardPort('nb', NODE_PORT, 'a');
    nodes.push(await network.startNode('nb', { port: NODE_PORT, cpus: 1, secret: SECRET, args: ['--ext-host', outside] }));
    const output = parse(await runClient({ nodes: [outside] }));
    // The client knows the node only by the router's address: discovery and jobs went through the forwarded port.
    expect(output.nodes).toEqual([outside]);
    expect(output.ipAddrs).toEqual([outside, outside, outside]);
    expect(output.results).toEqual([1, 101, 102]);
  });

  it('serves a client behind NAT with no forwarded port (the client opens every connection), and says extIpAddr has no effect', async () => {
    network.masquerade('a');
    const nb = network.host('nb');
    nodes.push(await network.startNode('nb', { port: NODE_PORT, cpus: 1, secret: SECRET }));
    const result = await runClient({ nodes: [nb.address], extIpAddr: '203.0.113.7' });
    const output = parse(result);
    expect(output.nodes).toEqual([nb.address]);
    expect(output.ipAddrs).toEqual([nb.address, nb.address, nb.address]);
    expect(result.stderr).toContain('extIpAddr has no effect');
    // Nothing in b may open a connection into a: the node could not have called the client back.
    const back = await network.runProgram(
      'nb',
      '-e',
      [
        `const s = require('node:net').connect(${NODE_PORT}, '${network.host('client').address}');
         s.setTimeout(1000, () => { process.stdout.write('TIMEOUT'); process.exit(0); });
         s.on('connect', () => process.stdout.write('CONNECTED'));
         s.on('error', (e) => process.stdout.write(e.code));`,
      ],
      { timeoutMs: 5000 },
    );
    expect(back.stdout).toBe('TIMEOUT');
  });
});
