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
import type { SchedulerProcess } from '../../../testing/dispyscheduler-process.mjs';

// Discovery on real interfaces, between namespaces (testing/network-namespaces.ts): a node on two
// networks, one bound with -i, IPv6 only (link-local and unique local), a node started after the
// client whose first reply is lost, strangers' datagrams, a dispyscheduler, and the size of every
// discovery datagram that crossed these networks.
const unavailable = namespacesUnavailable();
const noFirewall = natUnavailable();
const clientScript = fileURLToPath(new URL('./fixtures/net-client.mjs', import.meta.url));
const probeScript = fileURLToPath(new URL('./fixtures/datagram-probe.mjs', import.meta.url));
const NODE_PORT = 51348;
const SECRET = 'real networks secret';

interface ClientSpec {
  options: Record<string, unknown>;
  shared?: boolean;
  waitNodes?: number;
  jobs?: number;
  timeoutMs?: number;
}
interface ClientOutput {
  nodes: string[];
  results: number[];
  ipAddrs: string[];
}

describe.skipIf(unavailable)(`discovery on real interfaces${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let network: Network;
  const nodes: NodeProcess[] = [];
  const schedulers: SchedulerProcess[] = [];
  const cleanups: Array<() => void> = [];

  beforeAll(() => {
    network = createNetwork({
      subnets: { a: {}, c: {}, v6: { ipv4: false, ipv6: true } },
      hosts: { client: ['a'], n1: ['a'], n2: ['a'], multi: ['a', 'c'], cclient: ['c'], sched: ['a'], probe: ['a'], c6: ['v6'], n6: ['v6'] },
    });
    // Every UDP datagram in and out of every host is counted, and those over 1,200 bytes of payload (UDP length 1,208).
    if (!noFirewall) {
      for (const name of Object.keys(network.hosts)) {
        network.exec(
          name,
          'nft',
          ['-f', '-'],
          `table inet sizes {
            chain in { type filter hook input priority 0; udp length > 1208 counter; meta l4proto udp counter; }
            chain out { type filter hook output priority 0; udp length > 1208 counter; meta l4proto udp counter; }
          }`,
        );
      }
    }
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) cleanup();
    await Promise.all([...schedulers.splice(0), ...nodes.splice(0)].map((process) => process.stop()));
  });
  afterAll(async () => {
    await network?.destroy();
  });

  const startNode = async (host: string, args: string[] = [], hostOption?: string): Promise<NodeProcess> => {
    const node = await network.startNode(host, { port: NODE_PORT, cpus: 1, secret: SECRET, host: hostOption, args });
    nodes.push(node);
    return node;
  };
  const runClient = async (host: string, spec: ClientSpec): Promise<ProgramResult> =>
    network.runProgram(host, clientScript, [JSON.stringify(withSecret(spec))], { timeoutMs: 30_000 });
  const withSecret = (spec: ClientSpec): ClientSpec => ({ ...spec, options: { secret: SECRET, ...spec.options } });
  const parse = (result: ProgramResult): ClientOutput => {
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as ClientOutput;
  };
  /** Starts a client program and resolves `started` once its cluster exists; `done` with its end. */
  const startClient = (host: string, spec: ClientSpec): { started: Promise<void>; done: Promise<ProgramResult> } => {
    const child = network.spawnNode(host, [clientScript, JSON.stringify(withSecret(spec))]);
    cleanups.push(() => child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const started = new Promise<void>((resolve, reject) => {
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes('cluster started')) resolve();
      });
      child.once('exit', () => reject(new Error(`client exited before its cluster started: ${stderr}`)));
    });
    const done = new Promise<ProgramResult>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stdout, stderr })));
    return { started, done };
  };

  it('a node on two networks answers each with its address there', async () => {
    const multi = network.host('multi');
    await startNode('multi');
    const spec = { options: { nodes: ['*'], nodePort: NODE_PORT }, waitNodes: 1 };
    const [inA, inC] = await Promise.all([runClient('client', spec), runClient('cclient', spec)]);
    expect(parse(inA)).toMatchObject({ nodes: [multi.ipv4.a], ipAddrs: [multi.ipv4.a, multi.ipv4.a, multi.ipv4.a] });
    expect(parse(inC)).toMatchObject({ nodes: [multi.ipv4.c], ipAddrs: [multi.ipv4.c, multi.ipv4.c, multi.ipv4.c] });
  });

  it('a node serving two named addresses (-i twice) answers each network with its own', async () => {
    const multi = network.host('multi');
    await startNode('multi', ['-i', multi.ipv4.c!], multi.ipv4.a);
    const spec = { options: { nodes: ['*'], nodePort: NODE_PORT }, waitNodes: 1 };
    const [inA, inC] = await Promise.all([runClient('client', spec), runClient('cclient', spec)]);
    expect(parse(inA).nodes).toEqual([multi.ipv4.a]);
    expect(parse(inC).nodes).toEqual([multi.ipv4.c]);
  });

  it('a node bound to one of its interfaces with -i is found there only', async () => {
    const multi = network.host('multi');
    await startNode('multi', [], multi.ipv4.c);
    const [inA, inC] = await Promise.all([
      runClient('client', { options: { nodes: ['*'], nodePort: NODE_PORT }, timeoutMs: 3000 }),
      runClient('cclient', { options: { nodes: ['*'], nodePort: NODE_PORT } }),
    ]);
    expect(parse(inC).nodes).toEqual([multi.ipv4.c]);
    // Network a hears nothing of it: the client gives up after its bounded wait.
    expect(inA.code).toBe(3);
    expect(inA.stderr).toContain('found only 0 node(s)');
  });

  it('finds nodes and runs jobs over IPv6 alone: link-local with its scope, and a named unique local address', async () => {
    const n6 = network.host('n6');
    await startNode('n6');
    const linkLocal = parse(await runClient('c6', { options: { nodes: ['*'], nodePort: NODE_PORT } }));
    const expected = n6.linkLocal('v6');
    expect(linkLocal.nodes).toEqual([expected]);
    expect(linkLocal.ipAddrs).toEqual([expected, expected, expected]);
    expect(linkLocal.results).toEqual([1, 101, 102]);
    // ipAddr names the client's unique local address: pings leave from it, and the node answers with its own.
    const unique = parse(await runClient('c6', { options: { nodes: ['*'], nodePort: NODE_PORT, ipAddr: network.host('c6').ipv6.v6 } }));
    expect(unique.nodes).toEqual([n6.ipv6.v6]);
    expect(unique.ipAddrs).toEqual([n6.ipv6.v6, n6.ipv6.v6, n6.ipv6.v6]);
  });

  it('discovers by the IPv4 multicast group with ipv4UdpMulticast, where only nodes with --ipv4-udp-multicast listen', async () => {
    await Promise.all([startNode('n1'), startNode('n2', ['--ipv4-udp-multicast'])]);
    const output = parse(await runClient('client', { options: { nodes: ['*'], nodePort: NODE_PORT, ipv4UdpMulticast: true } }));
    expect(output.nodes).toEqual([network.host('n2').address]);
    expect(new Set(output.ipAddrs)).toEqual(new Set([network.host('n2').address]));
  });

  it.skipIf(noFirewall)('finds a node started after the client, even when the node’s first reply is lost', async () => {
    const client = startClient('client', { options: { nodes: ['*'], nodePort: NODE_PORT }, waitNodes: 1 });
    await client.started;
    // The node's first discovery reply (from its port) is dropped on the way out.
    network.exec(
      'n1',
      'nft',
      ['-f', '-'],
      `table inet lose_first {
        chain out { type filter hook output priority 0; udp sport ${NODE_PORT} quota until 100 bytes drop; }
      }`,
    );
    await startNode('n1');
    const output = parse(await client.done);
    expect(output.nodes).toEqual([network.host('n1').address]);
    expect(network.exec('n1', 'nft', ['list', 'table', 'inet', 'lose_first'])).toMatch(/quota 100 bytes used 100 bytes drop/);
    network.exec('n1', 'nft', ['delete', 'table', 'inet', 'lose_first']);
  });

  it('ignores strangers: garbage, another secret, replayed and stale datagrams, at a node and at a client', async () => {
    const node = network.host('n2');
    await startNode('n2');
    const probe = (spec: Record<string, unknown>) =>
      network.runProgram('probe', probeScript, [JSON.stringify({ secret: SECRET, ...spec })], { timeoutMs: 10_000 });
    const atNode = await probe({ mode: 'ping', host: node.address, port: NODE_PORT });
    expect(atNode.code, atNode.stderr).toBe(0);
    // One reply, to the genuine ping; the ping with another secret may be told `refused`; nothing else.
    const counts = JSON.parse(atNode.stdout) as { replies: number; refused: number; other: number };
    expect(counts.replies).toBe(1);
    expect(counts.refused).toBeLessThanOrEqual(1);
    expect(counts.other).toBe(0);
    // A client (on the default client port) pings a node that announced itself, once: not for another secret's announcement, nor a replayed one.
    const client = startClient('client', { options: { nodes: ['10.77.1.250'], nodePort: NODE_PORT }, timeoutMs: 25_000 });
    await client.started;
    const atClient = await probe({ mode: 'announce', host: network.host('client').address, port: 51347, listenPort: 51400 });
    expect(atClient.code, atClient.stderr).toBe(0);
    expect(JSON.parse(atClient.stdout)).toMatchObject({ pings: 1 });
  });

  it('a dispyscheduler in subnet a finds the nodes of a by broadcast and serves a SharedJobCluster', async () => {
    await Promise.all([startNode('n1'), startNode('n2')]);
    const sched = network.host('sched');
    const scheduler = await network.startScheduler('sched', {
      nodes: ['*'],
      nodePort: NODE_PORT,
      nodeSecret: SECRET,
      clusterSecret: SECRET,
    });
    schedulers.push(scheduler);
    const output = parse(
      await runClient('client', { shared: true, options: { schedulerNode: sched.address, schedulerPort: scheduler.port }, waitNodes: 2 }),
    );
    const inA = [network.host('n1').address, network.host('n2').address];
    expect(output.nodes.sort()).toEqual(inA);
    for (const address of output.ipAddrs) expect(inA).toContain(address);
  });

  it.skipIf(noFirewall)('every discovery datagram that crossed these networks had at most 1,200 bytes', () => {
    let all = 0;
    let large = 0;
    for (const name of Object.keys(network.hosts)) {
      const listing = network.exec(name, 'nft', ['list', 'table', 'inet', 'sizes']);
      for (const match of listing.matchAll(/(udp length > 1208 )?counter packets (\d+)/g)) {
        if (match[1]) large += Number(match[2]);
        else all += Number(match[2]);
      }
    }
    expect(all).toBeGreaterThan(20);
    expect(large).toBe(0);
  });
});
