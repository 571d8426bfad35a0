import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createNetwork, namespacesUnavailable, type Network } from '../../../testing/network-namespaces.js';
import type { NodeProcess } from '../../../testing/dispynode-process.mjs';

const unavailable = namespacesUnavailable();
const clientScript = fileURLToPath(new URL('./fixtures/net-client.mjs', import.meta.url));
const port = 51348;

describe.skipIf(unavailable)(`broadcast discovery between network namespaces${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let network: Network;
  const nodes: NodeProcess[] = [];

  beforeAll(() => {
    // Subnet a: the client and two nodes; the router joins a and b but forwards no broadcast.
    network = createNetwork({
      subnets: { a: {}, b: {} },
      hosts: { client: ['a'], n1: ['a'], n2: ['a'], router: ['a', 'b'], n3: ['b'] },
      router: 'router',
    });
  });
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((node) => node.stop()));
  });
  afterAll(async () => {
    await network?.destroy();
  });

  it('finds the nodes of its subnet by broadcast, and none behind the router, and runs jobs there', async () => {
    // The nodes listen on every interface of their hosts, as `npx dispynode` does by default.
    for (const name of ['n1', 'n2', 'n3']) nodes.push(await network.startNode(name, { port, cpus: 1 }));
    const spec = { options: { nodes: ['*'], nodePort: port, port: 0 }, waitNodes: 2, jobs: 4 };
    const result = await network.runProgram('client', clientScript, [JSON.stringify(spec)]);
    expect(result.code, result.stderr).toBe(0);
    const { nodes: found, results, ipAddrs } = JSON.parse(result.stdout) as { nodes: string[]; results: number[]; ipAddrs: string[] };
    const inA = [network.host('n1').address, network.host('n2').address];
    expect(found.sort()).toEqual(inA);
    expect(results).toEqual([1, 2, 101, 102, 103, 104]);
    for (const address of ipAddrs) expect(inA).toContain(address);
    for (const node of nodes) await node.stop();
    expect(nodes.map((node) => node.child.exitCode)).toEqual([0, 0, 0]);
  });
});
