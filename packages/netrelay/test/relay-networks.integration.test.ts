import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createNetwork, namespacesUnavailable, type Network } from '../../../testing/network-namespaces.js';

// Two subnets joined by a router: A (10.77.1.0/24) holds the clients, B (10.77.2.0/24) the relay
// and the nodes, beyond the reach of A's broadcasts. Everything runs inside namespaces the test makes.
const unavailable = namespacesUnavailable();
const RELAY_BIN = fileURLToPath(new URL('../../../apps/dispynetrelay/dist/bin.js', import.meta.url));
const CLIENT = fileURLToPath(new URL('../../client/test/fixtures/net-client.mjs', import.meta.url));
const PROBE = fileURLToPath(new URL('./fixtures/probe-relay.mjs', import.meta.url));
const SECRET = 'relay across subnets';

let network: Network | undefined;
afterEach(async () => {
  await network?.destroy();
  network = undefined;
});

function twoSubnets(): Network {
  network = createNetwork({
    subnets: { a: {}, b: {} },
    hosts: { a1: ['a'], a2: ['a'], router: ['a', 'b'], relay: ['b'], b1: ['b'], b2: ['b'], b3: ['b'] },
    router: 'router',
  });
  return network;
}

/** Starts `dispynetrelay` (every interface, default ports) in the relay's namespace; resolves once it serves. */
async function startRelay(net: Network): Promise<{
  child: ChildProcess;
  logged: (pattern: RegExp) => Promise<void>;
  status: () => Promise<Record<string, unknown>>;
}> {
  const child = net.spawnNode('relay', [RELAY_BIN], { env: { DISPY_SECRET: SECRET }, stdio: ['pipe', 'pipe', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  /** Resolves once the relay's log matches (bounded: 200 chunks of log); rejects if it exits. */
  const logged = async (pattern: RegExp): Promise<void> => {
    for (let turn = 0; turn < 200 && !pattern.test(log); turn++) {
      await new Promise<void>((resolve, reject) => {
        const exited = (code: number | null): void => reject(new Error(`dispynetrelay exited (${code}): ${log}`));
        child.once('exit', exited);
        child.stderr!.once('data', () => {
          child.off('exit', exited);
          resolve();
        });
      });
    }
    expect(log).toMatch(pattern);
  };
  await logged(/relaying pings heard on/);
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const status = async (): Promise<Record<string, unknown>> => {
    out = '';
    child.stdin!.write('status\n');
    for (let turn = 0; turn < 100 && !/}\s*$/.test(out); turn++) await new Promise((resolve) => child.stdout!.once('data', resolve));
    return JSON.parse(out) as Record<string, unknown>;
  };
  return { child, logged, status };
}

const clientOptions = (net: Network, extra: Record<string, unknown> = {}) => ({
  // The relay's host, and a pattern for the nodes behind it, as the seed tells.
  nodes: [net.host('relay').address, '10.77.2.*'],
  secret: SECRET,
  ...extra,
});

const run = (net: Network, host: string, spec: Record<string, unknown>) =>
  net.runProgram(host, CLIENT, [JSON.stringify(spec)], { secret: SECRET, timeoutMs: 40_000 });

describe.skipIf(unavailable)(`dispynetrelay between subnets${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  it('a client in A runs jobs on two nodes in B, found through a relay in B', async () => {
    const net = twoSubnets();
    await Promise.all(['b1', 'b2'].map((name) => net.startNode(name, { secret: SECRET })));
    await startRelay(net);
    const result = await run(net, 'a1', { options: clientOptions(net), waitNodes: 2, jobs: 4, timeoutMs: 25_000 });
    expect(result.code, result.stderr).toBe(0);
    const { nodes, results } = JSON.parse(result.stdout) as { nodes: string[]; results: number[] };
    expect(nodes.sort()).toEqual([net.host('b1').address, net.host('b2').address]);
    expect(results).toEqual([1, 2, 101, 102, 103, 104]);
  });

  it('two clients in A use one relay at once', async () => {
    const net = twoSubnets();
    await Promise.all(['b1', 'b2'].map((name) => net.startNode(name, { secret: SECRET })));
    const relay = await startRelay(net);
    const spec = { options: clientOptions(net), waitNodes: 2, jobs: 4, timeoutMs: 25_000 };
    const results = await Promise.all([run(net, 'a1', spec), run(net, 'a2', spec)]);
    for (const result of results) {
      expect(result.code, result.stderr).toBe(0);
      expect((JSON.parse(result.stdout) as { nodes: string[] }).nodes.sort()).toEqual([net.host('b1').address, net.host('b2').address]);
    }
    const clients = (await relay.status()).clients as Array<{ host: string }>;
    expect(clients.map(({ host }) => host).sort()).toEqual([net.host('a1').address, net.host('a2').address]);
  });

  it('a node started in B after the cluster started is found through the relay (its announcement)', async () => {
    const net = twoSubnets();
    await net.startNode('b1', { secret: SECRET });
    const relay = await startRelay(net);
    // One ping at start, the next an hour later: only the late node's announcement, passed on by
    // the relay, can bring it.
    const client = run(net, 'a1', { options: clientOptions(net, { pingInterval: 3600 }), waitNodes: 2, jobs: 2, timeoutMs: 30_000 });
    await relay.logged(new RegExp(`client ${net.host('a1').address.replaceAll('.', '\\.')}:\\d+ uses this relay`));
    await net.startNode('b3', { secret: SECRET });
    const result = await client;
    expect(result.code, result.stderr).toBe(0);
    expect((JSON.parse(result.stdout) as { nodes: string[] }).nodes).toEqual([net.host('b1').address, net.host('b3').address]);
    expect((await relay.status()).announcementsRelayed).toBeGreaterThanOrEqual(1);
  });

  it('the relay passes on no replayed, forged, stale or foreign ping, and no answer is larger than its ping', async () => {
    const net = twoSubnets();
    await Promise.all(['b1', 'b2'].map((name) => net.startNode(name, { secret: SECRET })));
    const relay = await startRelay(net);
    const result = await net.runProgram('a1', PROBE, [net.host('relay').address, '51348', '2'], { secret: SECRET, timeoutMs: 30_000 });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const { got } = JSON.parse(result.stdout) as { got: Array<{ kind: string; bytes: number; from?: string }> };
    expect(got.map(({ kind }) => kind)).toEqual(['relayedReply', 'relayedReply', 'refused', 'relayedReply', 'relayedReply']);
    for (const { bytes } of got) expect(bytes).toBeLessThanOrEqual(1200);
    expect(new Set(got.filter(({ from }) => from).map(({ from }) => from))).toEqual(
      new Set([net.host('b1').address, net.host('b2').address]),
    );
    // Two pings passed on, the four others dropped by the relay itself.
    expect(await relay.status()).toMatchObject({ pingsRelayed: 2, repliesRelayed: 4 });
    expect((await relay.status()).dropped).toBeGreaterThanOrEqual(4);
  });

  it('a dispyscheduler in A shares two nodes in B, found through the relay, with a SharedJobCluster', async () => {
    const net = twoSubnets();
    await Promise.all(['b1', 'b2'].map((name) => net.startNode(name, { secret: SECRET })));
    const relay = await startRelay(net);
    const scheduler = await net.startScheduler('a1', {
      nodes: [net.host('relay').address, '10.77.2.*'],
      nodePort: 51348,
      nodeSecret: SECRET,
      clusterSecret: 'the cluster secret, long enough',
    });
    const spec = {
      shared: true,
      options: {
        nodes: ['10.77.2.*'],
        schedulerNode: net.host('a1').address,
        schedulerPort: scheduler.port,
        secret: 'the cluster secret, long enough',
      },
      waitNodes: 2,
      jobs: 4,
      timeoutMs: 25_000,
    };
    const result = await run(net, 'a2', spec);
    expect(result.code, result.stderr + scheduler.log).toBe(0);
    expect((JSON.parse(result.stdout) as { nodes: string[] }).nodes.sort()).toEqual([net.host('b1').address, net.host('b2').address]);
    // The scheduler, not the program, is the relay's client.
    expect((await relay.status()).clients).toEqual([expect.objectContaining({ host: net.host('a1').address })]);
  });
});
