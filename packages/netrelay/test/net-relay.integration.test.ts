import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { JobCluster, NodeAllocate } from '@dispy/client';
import { DATAGRAM_WINDOW_MS, MAX_DATAGRAM_BYTES, openDatagram, sealDatagram, type dispy } from '@dispy/protocol';
import { DispyNetRelay } from '../src/index.js';
import { freePort, startNode, type NodeProcess } from '../../../testing/dispynode-process.mjs';

// Loopback addresses of this file's own: the relay on 127.0.121.1, clients on .2 and .3, nodes on .11 and up.
const RELAY = '127.0.121.1';
const SECRET = 'relay test secret';

const relays: DispyNetRelay[] = [];
const clusters: JobCluster[] = [];
const nodes: NodeProcess[] = [];
const sockets: dgram.Socket[] = [];

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close()));
  await Promise.all(nodes.splice(0).map((node) => node.stop()));
  await Promise.all(relays.splice(0).map((relay) => relay.close()));
  for (const socket of sockets.splice(0)) socket.close();
});

async function startRelay(options: ConstructorParameters<typeof DispyNetRelay>[0] = {}): Promise<DispyNetRelay> {
  const relay = new DispyNetRelay({ hosts: [RELAY], relayPort: 0, schedulerPort: 0, secret: SECRET, loglevel: 'silent', ...options });
  relays.push(relay);
  await relay.start();
  return relay;
}

/** A UDP socket of the test's own, with the datagrams it received and a bounded wait for them. */
async function udp(host: string) {
  const socket = dgram.createSocket('udp4');
  sockets.push(socket);
  const received: Array<{ message: Buffer; remote: dgram.RemoteInfo }> = [];
  const waiters: Array<() => void> = [];
  socket.on('message', (message, remote) => {
    received.push({ message, remote });
    for (const wake of waiters.splice(0)) wake();
  });
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  const until = async (count: number): Promise<void> => {
    let timedOut = false;
    const timeout = setTimeout(() => {
      timedOut = true;
      for (const wake of waiters.splice(0)) wake();
    }, 10_000);
    for (let turn = 0; turn < 1000 && received.length < count && !timedOut; turn++) {
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
    clearTimeout(timeout);
    expect(received.length).toBeGreaterThanOrEqual(count);
  };
  return { socket, port: socket.address().port, received, until };
}

/** A fake node: answers every authentic ping it gets with a reply naming `name` (padded to `replyBytes` at least). */
async function fakeNode(host: string, name: string) {
  const node = await udp(host);
  node.socket.on('message', (message, remote) => {
    const opened = openDatagram(SECRET, message);
    if (!opened?.authentic || opened.body.kind !== 'ping') return;
    const reply = { nonce: opened.body.nonce, name, cpus: 1, tcpHost: host, tcpPort: node.port };
    node.socket.send(sealDatagram(SECRET, { reply }), remote.port, remote.address);
  });
  return node;
}

const ping = (options: { secret?: string; sentAt?: number; padTo?: number } = {}): Buffer =>
  sealDatagram(
    options.secret ?? SECRET,
    { ping: { clientName: 'test' } },
    { sentAt: options.sentAt, padTo: options.padTo ?? MAX_DATAGRAM_BYTES },
  );

describe('DispyNetRelay', () => {
  it("passes a client's ping on, as it is, and the nodes' answers back, each naming its node and no larger than the ping", async () => {
    const a = await fakeNode('127.0.121.11', 'a');
    const b = await fakeNode('127.0.121.12', 'b');
    const relay = await startRelay({ nodes: [`127.0.121.11:${a.port}`, `127.0.121.12:${b.port}`] });
    const client = await udp('127.0.121.2');
    const sent = ping();
    client.socket.send(sent, relay.relayAddresses[0]!.port, RELAY);
    await client.until(2);
    expect(a.received[0]!.message.equals(sent)).toBe(true);
    expect(b.received[0]!.message.equals(sent)).toBe(true);
    const answers = client.received.map(({ message, remote }) => {
      expect(message.length).toBeLessThanOrEqual(sent.length);
      expect(remote).toMatchObject({ address: RELAY, port: relay.relayAddresses[0]!.port });
      const opened = openDatagram(SECRET, message)!;
      expect(opened.authentic).toBe(true);
      const relayed = opened.body.relayedReply as dispy.RelayedReply;
      expect(Buffer.from(relayed.reply!.nonce!).equals(Buffer.from(openDatagram(SECRET, sent)!.body.nonce))).toBe(true);
      return `${relayed.reply!.name} ${relayed.sourceHost}`;
    });
    expect(answers.sort()).toEqual(['a 127.0.121.11', 'b 127.0.121.12']);
    expect(relay.status()).toMatchObject({
      pingsRelayed: 1,
      repliesRelayed: 2,
      dropped: 0,
      clients: [{ host: '127.0.121.2', port: client.port }],
    });
  });

  it('passes on nothing that is forged, replayed, stale or of another secret, and tells the wrong secret it is refused', async () => {
    const node = await fakeNode('127.0.121.11', 'a');
    const relay = await startRelay({ nodes: [`127.0.121.11:${node.port}`] });
    const port = relay.relayAddresses[0]!.port;
    const client = await udp('127.0.121.2');
    const captured = ping();
    client.socket.send(captured, port, RELAY);
    await client.until(1);
    const forged = Buffer.from(ping());
    forged[forged.length - 40]! ^= 1;
    client.socket.send(captured, port, RELAY); // replayed
    client.socket.send(forged, port, RELAY); // changed on the way
    client.socket.send(ping({ sentAt: Date.now() - DATAGRAM_WINDOW_MS - 5000 }), port, RELAY); // stale
    client.socket.send(ping({ secret: 'another secret' }), port, RELAY); // not ours: refused
    // Forged announcements and answers reach no client either.
    client.socket.send(sealDatagram('another secret', { announce: { tcpPort: 1 } }), relay.announceAddresses[0]!.port, RELAY);
    node.socket.send(client.received[0]!.message, port, RELAY);
    // A fresh ping after them: once its answer is back, the others were dropped (one socket, in order, on loopback).
    client.socket.send(ping(), port, RELAY);
    await client.until(3);
    expect(node.received).toHaveLength(2);
    const kinds = client.received.map(({ message }) => openDatagram(SECRET, message)!.body.kind ?? 'unreadable');
    expect(kinds).toEqual(['relayedReply', 'refused', 'relayedReply']);
    expect(relay.status()).toMatchObject({ pingsRelayed: 2, repliesRelayed: 2, announcementsRelayed: 0 });
    expect(relay.status().dropped).toBeGreaterThanOrEqual(5);
  });

  it('never passes back an answer larger than its ping (no amplification)', async () => {
    const node = await fakeNode('127.0.121.11', 'a name long enough to make the answer larger than a bare ping');
    const relay = await startRelay({ nodes: [`127.0.121.11:${node.port}`] });
    const client = await udp('127.0.121.2');
    const small = sealDatagram(SECRET, { ping: {} });
    client.socket.send(small, relay.relayAddresses[0]!.port, RELAY);
    await node.until(1);
    client.socket.send(ping(), relay.relayAddresses[0]!.port, RELAY);
    await client.until(1);
    expect(client.received).toHaveLength(1);
    expect(openDatagram(SECRET, client.received[0]!.message)!.body.relayedReply?.reply?.name).toMatch(/^a name/);
    expect(relay.status()).toMatchObject({ pingsRelayed: 2, repliesRelayed: 1, dropped: 1 });
  });

  it('tells every client it remembers, and --scheduler-node hosts, of a node that announces itself', async () => {
    const scheduler = await udp('127.0.121.3');
    const relay = await startRelay({ schedulerNodes: [`127.0.121.3:${scheduler.port}`] });
    // At start, the scheduler is told of the relay: an announcement naming the relay's port.
    await scheduler.until(1);
    const relayPort = relay.relayAddresses[0]!.port;
    expect(openDatagram(SECRET, scheduler.received[0]!.message)!.body.announce).toMatchObject({ tcpPort: relayPort });
    const clients = [await udp('127.0.121.2'), await udp('127.0.121.4')];
    for (const client of clients) client.socket.send(ping(), relayPort, RELAY);
    await expect.poll(() => relay.status().clients.length).toBe(2);
    const node = await fakeNode('127.0.121.11', 'late');
    node.socket.send(sealDatagram(SECRET, { announce: { tcpPort: node.port } }), relay.announceAddresses[0]!.port, RELAY);
    for (const client of [...clients, scheduler]) {
      await client.until(1 + (client === scheduler ? 1 : 0));
      const told = client.received.at(-1)!;
      expect(told.remote).toMatchObject({ address: RELAY, port: relayPort });
      expect(openDatagram(SECRET, told.message)!.body.announce).toMatchObject({ tcpPort: relayPort });
    }
    // The client pings the relay again, and the node that announced itself is pinged by address.
    clients[0]!.socket.send(ping(), relayPort, RELAY);
    await clients[0]!.until(2);
    expect(openDatagram(SECRET, clients[0]!.received[1]!.message)!.body.relayedReply?.reply?.name).toBe('late');
    expect(relay.status().announcedNodes).toEqual([expect.objectContaining({ host: '127.0.121.11', port: node.port })]);
  });

  it("passes back a node's answer that reached it through another relay, naming the node", async () => {
    const node = await fakeNode('127.0.121.11', 'far');
    const far = await startRelay({ hosts: ['127.0.121.5'], nodes: [`127.0.121.11:${node.port}`] });
    // The near relay takes the far one for a node, as a relay that hears another's broadcast does.
    const near = await startRelay({ nodes: [`127.0.121.5:${far.relayAddresses[0]!.port}`] });
    const client = await udp('127.0.121.2');
    client.socket.send(ping(), near.relayAddresses[0]!.port, RELAY);
    await client.until(1);
    const relayed = openDatagram(SECRET, client.received[0]!.message)!.body.relayedReply;
    expect(relayed).toMatchObject({ sourceHost: '127.0.121.11', reply: { name: 'far' } });
  });

  it('refuses to start on a port held by another socket, naming the way out, and leaves nothing bound', async () => {
    const holder = await udp(RELAY);
    const relay = new DispyNetRelay({ hosts: [RELAY], relayPort: holder.port, schedulerPort: 0, loglevel: 'silent' });
    await expect(relay.start()).rejects.toMatchObject({ code: 'DISPY_ERR_START', message: expect.stringMatching(/--relay-port/) });
    await relay.close();
  });
});

describe('clusters through a DispyNetRelay (real dispynodes on loopback)', () => {
  async function twoNodes(): Promise<[NodeProcess, NodeProcess]> {
    const port = await freePort('127.0.121.11');
    const started = await Promise.all(['127.0.121.11', '127.0.121.12'].map((host) => startNode({ host, port, secret: SECRET })));
    nodes.push(...started);
    return started as [NodeProcess, NodeProcess];
  }

  /**
   * The relay's host, pinged as a node's, and the nodes behind it: what `[relay, '127.0.121.1*']`
   * says, without a `*`, which would broadcast beyond loopback.
   */
  class RelayAndNodesBehind extends NodeAllocate {
    override allocate(_cluster: unknown, ipAddr: string, _name: string, cpus: number): number {
      return /^127\.0\.121\.1\d$/.test(ipAddr) ? cpus : 0;
    }
  }

  function clusterVia(nodePort: number, ipAddr: string, extra: Record<string, unknown> = {}) {
    const cluster = new JobCluster((n: number) => n * 2, {
      nodes: [new RelayAndNodesBehind(RELAY)],
      nodePort,
      ipAddr,
      port: 0,
      secret: SECRET,
      loglevel: 'silent',
      ...extra,
    });
    clusters.push(cluster);
    return cluster;
  }

  async function runOn(cluster: JobCluster<(n: number) => number>, count: number): Promise<Set<string | undefined>> {
    const jobs = Array.from({ length: count }, (_, i) => cluster.submit(i));
    expect(await Promise.all(jobs.map((job) => job.wait()))).toEqual(Array.from({ length: count }, (_, i) => i * 2));
    return new Set(jobs.map((job) => job.ipAddr));
  }

  it('runs jobs of two clients at once on two nodes found only through the relay', async () => {
    const [a, b] = await twoNodes();
    // The relay at the nodes' port on its own address: clients list its host as any node's.
    const relay = await startRelay({ relayPort: a.port, nodes: [`${a.host}:${a.port}`, `${b.host}:${b.port}`] });
    const first = clusterVia(a.port, '127.0.121.2');
    const second = clusterVia(a.port, '127.0.121.3');
    const [usedByFirst, usedBySecond] = await Promise.all([
      (async () => {
        await expect.poll(() => first.status().nodes.length, { timeout: 20_000 }).toBe(2);
        return runOn(first, 8);
      })(),
      (async () => {
        await expect.poll(() => second.status().nodes.length, { timeout: 20_000 }).toBe(2);
        return runOn(second, 8);
      })(),
    ]);
    expect(usedByFirst).toEqual(new Set(['127.0.121.11', '127.0.121.12']));
    expect(usedBySecond).toEqual(new Set(['127.0.121.11', '127.0.121.12']));
    expect(
      relay
        .status()
        .clients.map(({ host }) => host)
        .sort(),
    ).toEqual(['127.0.121.2', '127.0.121.3']);
  });

  it('finds a node that starts after the cluster, through its announcement to the relay', async () => {
    const port = await freePort('127.0.121.11');
    const relay = await startRelay({ relayPort: port });
    const announceTo = `--scheduler-host=${RELAY}:${relay.announceAddresses[0]!.port}`;
    const early = await startNode({ host: '127.0.121.11', port, secret: SECRET, args: [announceTo] });
    nodes.push(early);
    await expect.poll(() => relay.status().announcedNodes.length).toBe(1);
    // One ping at start and none after (an hour apart): only the announcement can bring the late node.
    const cluster = clusterVia(port, '127.0.121.2', { pingInterval: 3600 });
    await expect.poll(() => cluster.status().nodes.length, { timeout: 20_000 }).toBe(1);
    const late = await startNode({ host: '127.0.121.12', port, secret: SECRET, args: [announceTo] });
    nodes.push(late);
    await expect.poll(() => cluster.status().nodes.length, { timeout: 20_000 }).toBe(2);
    expect(await runOn(cluster, 8)).toEqual(new Set(['127.0.121.11', '127.0.121.12']));
  });
});
