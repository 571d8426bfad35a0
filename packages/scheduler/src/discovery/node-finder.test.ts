import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { DATAGRAM_WINDOW_MS, MAX_DATAGRAM_BYTES, openDatagram, sealDatagram, type dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import { NodeFinder, type NodeFinderOptions } from './node-finder.js';
import { freePort } from '../../../../testing/dispynode-process.mjs';

// Real UDP sockets on loopback addresses of this file's own (127.0.62.*).
const SECRET = 'finder secret';

interface Harness {
  finder: NodeFinder;
  node: dgram.Socket;
  nodePort: number;
  finderPort: number;
  lines: string[];
  /** What was logged at debug. */
  debugLines: string[];
  replies: dispy.DiscoveryReply[];
  /** The address each reply was taken to come from. */
  addresses: string[];
  /** Pings the fake node received. */
  pings: Buffer[];
  /** Resolves once `check` holds, re-checked on every datagram either side receives (bounded). */
  until: (check: () => boolean) => Promise<void>;
}

const opened: Harness[] = [];

afterEach(async () => {
  for (const { finder, node } of opened.splice(0)) {
    finder.close();
    await new Promise<void>((resolve) => node.close(() => resolve()));
  }
});

async function start(more: Partial<NodeFinderOptions> = {}): Promise<Harness> {
  const nodePort = await freePort('127.0.62.1');
  const finderPort = await freePort('127.0.62.2');
  const node = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => node.bind(nodePort, '127.0.62.1', resolve));
  const lines: string[] = [];
  const keep = (line: string): void => void lines.push(line);
  const debugLines: string[] = [];
  const logger: Logger = {
    level: 'debug',
    debug: (line) => {
      debugLines.push(line);
      wake();
    },
    info: keep,
    warn: (line) => {
      keep(line);
      wake();
    },
    error: keep,
  };
  const replies: dispy.DiscoveryReply[] = [];
  const addresses: string[] = [];
  const pings: Buffer[] = [];
  const waiters: Array<() => void> = [];
  const wake = (): void => {
    for (const resolve of waiters.splice(0)) resolve();
  };
  node.on('message', (message) => {
    pings.push(message);
    wake();
  });
  const finder = new NodeFinder({
    secret: SECRET,
    bindHost: '127.0.62.2',
    bindPort: finderPort,
    portIsDefault: false,
    nodePort,
    clientName: 'finder-test',
    logger,
    pingInterval: 3600,
    onReply: (reply, address) => {
      replies.push(reply);
      addresses.push(address);
      wake();
    },
    ...more,
  });
  await finder.start();
  const until = async (check: () => boolean): Promise<void> => {
    for (let turn = 0; turn < 100 && !check(); turn++) await new Promise<void>((resolve) => waiters.push(resolve));
    expect(check()).toBe(true);
  };
  const harness = { finder, node, nodePort, finderPort, lines, debugLines, replies, addresses, pings, until };
  opened.push(harness);
  return harness;
}

function replyTo(ping: Buffer, options: { sentAt?: number } = {}): Buffer {
  const nonce = openDatagram(SECRET, ping)!.body.nonce;
  return sealDatagram(SECRET, { reply: { nonce, name: 'fake', cpus: 1, tcpHost: '127.0.62.1', tcpPort: 1 } }, options);
}

describe('NodeFinder', () => {
  it('pings padded to MAX_DATAGRAM_BYTES, signed, with a fresh time and nonce', async () => {
    const h = await start();
    h.finder.addHost('127.0.62.1');
    h.finder.pingNow();
    await h.until(() => h.pings.length === 1);
    expect(h.pings[0]).toHaveLength(MAX_DATAGRAM_BYTES);
    const ping = openDatagram(SECRET, h.pings[0]!)!;
    expect(ping.authentic).toBe(true);
    expect(Math.abs(Date.now() - ping.body.sentAt)).toBeLessThan(DATAGRAM_WINDOW_MS);
    expect(ping.body.ping?.clientName).toBe('finder-test');
  });

  it('takes a reply once: the same reply replayed, or a stale one, is dropped and summed up in one line', async () => {
    const h = await start();
    h.finder.addHost('127.0.62.1');
    h.finder.pingNow();
    await h.until(() => h.pings.length === 1);
    const reply = replyTo(h.pings[0]!);
    h.node.send(reply, h.finderPort, '127.0.62.2');
    await h.until(() => h.replies.length === 1);
    // Replayed three times and a stale one, then a fresh reply: only the fresh one is taken.
    for (let i = 0; i < 3; i++) h.node.send(reply, h.finderPort, '127.0.62.2');
    h.node.send(replyTo(h.pings[0]!, { sentAt: Date.now() - DATAGRAM_WINDOW_MS - 1000 }), h.finderPort, '127.0.62.2');
    h.node.send(replyTo(h.pings[0]!), h.finderPort, '127.0.62.2');
    await h.until(() => h.replies.length === 2);
    expect(h.lines).toEqual(['discovery datagrams dropped in the last minute: 1 replayed']);
  });

  it('answers an announcement with a ping once: a replayed announcement is dropped', async () => {
    const h = await start();
    const announce = (): Buffer => sealDatagram(SECRET, { announce: { tcpHost: '127.0.62.1', tcpPort: h.nodePort } });
    const captured = announce();
    h.node.send(captured, h.finderPort, '127.0.62.2');
    await h.until(() => h.pings.length === 1);
    h.node.send(captured, h.finderPort, '127.0.62.2');
    h.node.send(sealDatagram(SECRET, { announce: { tcpPort: h.nodePort } }, { sentAt: 5 }), h.finderPort, '127.0.62.2');
    h.node.send(announce(), h.finderPort, '127.0.62.2');
    await h.until(() => h.pings.length === 2);
    expect(h.lines).toEqual(['discovery datagrams dropped in the last minute: 1 replayed']);
  });

  it("takes a node's answer passed on by a relay as coming from the node, once, and only under our secret", async () => {
    const h = await start();
    h.finder.addHost('127.0.62.1');
    h.finder.pingNow();
    await h.until(() => h.pings.length === 1);
    const nonce = openDatagram(SECRET, h.pings[0]!)!.body.nonce;
    const relayed = (secret: string, sourceHost: string): Buffer =>
      sealDatagram(secret, {
        relayedReply: { sourceHost, reply: { nonce, name: 'behind', cpus: 2, tcpHost: '10.9.0.7', tcpPort: 4 } },
      });
    const captured = relayed(SECRET, '10.9.0.7');
    h.node.send(relayed('another secret', '10.9.0.6'), h.finderPort, '127.0.62.2');
    h.node.send(captured, h.finderPort, '127.0.62.2');
    h.node.send(captured, h.finderPort, '127.0.62.2');
    h.node.send(relayed(SECRET, ''), h.finderPort, '127.0.62.2');
    await h.until(() => h.replies.length === 2);
    // The relay (127.0.62.1) is not taken for the node: the node's address is the one the relay heard.
    expect(h.addresses).toEqual(['10.9.0.7', '10.9.0.7']);
    expect(h.replies[0]!.name).toBe('behind');
    expect(h.lines).toEqual(['discovery datagrams dropped in the last minute: 1 replayed']);
  });

  it('logs at debug each round, each reply used, and why a reply is not used (another secret, no ping of ours)', async () => {
    const h = await start();
    h.finder.addHost('127.0.62.1', h.nodePort);
    h.finder.pingNow();
    await h.until(() => h.pings.length === 1);
    expect(h.debugLines).toContain(`discovery round 1: pinged 127.0.62.1:${h.nodePort}; next round in 3600.0 s`);
    const nonce = openDatagram(SECRET, h.pings[0]!)!.body.nonce;
    const reply = (secret: string, echoed: Uint8Array) =>
      sealDatagram(secret, { reply: { nonce: echoed, name: 'fake', cpus: 1, totalCpus: 2, tcpHost: '127.0.62.1', tcpPort: 7 } });
    h.node.send(reply('another secret', nonce), h.finderPort, '127.0.62.2');
    h.node.send(reply(SECRET, Buffer.alloc(nonce.length, 1)), h.finderPort, '127.0.62.2');
    h.node.send(reply(SECRET, nonce), h.finderPort, '127.0.62.2');
    await h.until(() => h.replies.length === 1 && h.debugLines.some((line) => line.includes('answers no recent ping')));
    const from = `127.0.62.1:${h.nodePort}`;
    expect(h.debugLines).toContain(`discovery: a datagram from ${from} not used: sealed with another secret (the secrets differ)`);
    expect(h.debugLines).toContain(`discovery: reply from ${from} not used: it answers no recent ping of this client`);
    expect(h.debugLines).toContain(`discovery: reply from ${from}: node fake at 127.0.62.1:7, 1 of 2 CPUs free`);
  });

  it('warns once when jobs wait and no node is found, naming what it pinged and from where; not when the scheduler has a node', async () => {
    // First a finder whose scheduler has a node: its timer, armed first, ends before the other's.
    const quiet = await start({ noNodeWarning: 0.2, hasNodes: () => true });
    quiet.finder.setActive(true);
    const h = await start({ noNodeWarning: 0.2, hasNodes: () => false });
    h.finder.addHost('127.0.62.1', h.nodePort);
    h.finder.setActive(true);
    h.finder.pingNow();
    await h.until(() => h.lines.some((line) => line.startsWith('no node found')));
    const warning = h.lines.find((line) => line.startsWith('no node found'))!;
    expect(warning).toContain(
      `no node found in 0.2 s while jobs wait: no node answered. In 1 round, discovery pinged 127.0.62.1:${h.nodePort}, from 127.0.62.2:${h.finderPort}.`,
    );
    expect(warning).toContain(`--scheduler-host 127.0.62.2:${h.finderPort}`);
    expect(quiet.finder['noNodeTimer']).toBeUndefined();
    expect(quiet.lines).toEqual([]);
    // Once: jobs waiting again do not repeat it.
    h.finder.setActive(false);
    h.finder.setActive(true);
    expect(h.finder['noNodeTimer']).toBeUndefined();
    expect(h.lines.filter((line) => line.startsWith('no node found'))).toHaveLength(1);
  });
});
