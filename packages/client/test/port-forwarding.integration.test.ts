import { afterEach, describe, expect, it } from 'vitest';
import { JobCluster } from '../src/index.js';
import { startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';
import { startRelay, type TcpRelay } from '../../../testing/tcp-relay.js';
import { startUdpRelay, type UdpRelay } from '../../../testing/udp-relay.js';

// SSH port forwarding, as the guide "Remote networks" describes it, on loopback (127.0.121.*): the
// node serves only its own address (127.0.121.1) and names, with --ext-host, the client's end of
// the tunnel (127.0.121.2), where `ssh -L` would listen for TCP and socat for discovery's UDP; here
// testing/tcp-relay.ts and testing/udp-relay.ts stand in for them.
const relays: Array<TcpRelay | UdpRelay> = [];

afterEach(async () => {
  await Promise.all(relays.splice(0).map((relay) => relay.close()));
  await stopAllNodes();
});

describe('a node reached through a forwarded port (SSH forwarding)', () => {
  it('is found and runs jobs at the forwarded address, which is all the client knows of it', async () => {
    const node = await startNode({ host: '127.0.121.1', cpus: 1, args: ['--ext-host', '127.0.121.2'] });
    const tcp = await startRelay('127.0.121.2', node.host, node.port);
    const udp = await startUdpRelay('127.0.121.2', node.port, node.host, node.port);
    relays.push(tcp, udp);
    const cluster = new JobCluster((n: number) => n * 2, {
      nodes: ['127.0.121.2'],
      nodePort: node.port,
      ipAddr: '127.0.121.3',
      port: 0,
      recoverFile: false,
    });
    try {
      const jobs = [1, 2, 3].map((n) => cluster.submit(n));
      expect(await Promise.all(jobs.map((job) => job.wait()))).toEqual([2, 4, 6]);
      // Nothing but the relays listens at 127.0.121.2: discovery and jobs went through them.
      expect(jobs.map((job) => job.ipAddr)).toEqual(['127.0.121.2', '127.0.121.2', '127.0.121.2']);
      expect(udp.relayed).toBeGreaterThan(0);
    } finally {
      await cluster.close();
    }
  });
});
