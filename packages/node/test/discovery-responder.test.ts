import dgram from 'node:dgram';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DATAGRAM_WINDOW_MS, MAX_DATAGRAM_BYTES, NONCE_BYTES, newNonce, openDatagram, sealDatagram, dispy } from '@dispy/protocol';
import { SUMMARY_INTERVAL_MS, type Logger } from '@dispy/protocol/internal';
import { DiscoveryResponder } from '../src/discovery/discovery-responder.js';
import { freePort } from '../../../testing/dispynode-process.mjs';

// Real UDP sockets on loopback addresses of this file's own (127.0.61.*).
const SECRET = 'a discovery secret of some length';
const NODE_NAME = 'node-called-zebra';
const PLATFORM = 'plan9-mips node-99.1.2';

interface Harness {
  responder: DiscoveryResponder;
  host: string;
  port: number;
  lines: string[];
  client: dgram.Socket;
  /** Datagrams the client received, in order. */
  received: Buffer[];
  /** Sends `datagram` to the node, then a fresh signed ping, and resolves with what came back up to that ping's reply. */
  sendThenSentinel: (datagram: Buffer) => Promise<Buffer[]>;
}

const open: Array<{ responder: DiscoveryResponder; client: dgram.Socket }> = [];

afterEach(async () => {
  for (const { responder, client } of open.splice(0)) {
    responder.close();
    await new Promise<void>((resolve) => client.close(() => resolve()));
  }
});

function capturingLogger(lines: string[]): Logger {
  const keep = (line: string): void => void lines.push(line);
  return { level: 'debug', debug: keep, info: keep, warn: keep, error: keep };
}

/** A signed ping as a client sends it: padded to MAX_DATAGRAM_BYTES. */
function ping(options: { secret?: string; nonce?: Uint8Array; sentAt?: number; padTo?: number } = {}): Buffer {
  const { secret = SECRET, padTo = MAX_DATAGRAM_BYTES, ...rest } = options;
  return sealDatagram(secret, { ping: { clientName: 'tester', clientPort: 1 } }, { ...rest, padTo });
}

function nonceOf(datagram: Buffer): Buffer {
  // Replies are encrypted under the secret; refusals are in the clear, sealed with the empty one.
  const opened = openDatagram(SECRET, datagram)!;
  const body = opened.authentic ? opened.body : openDatagram('', datagram)!.body;
  return Buffer.from(body.reply?.nonce ?? body.refused?.nonce ?? body.nonce);
}

async function start(host: string): Promise<Harness> {
  const port = await freePort(host);
  const lines: string[] = [];
  const responder = new DiscoveryResponder({
    secret: SECRET,
    hosts: [host],
    port,
    logger: capturingLogger(lines),
    describe: () => Promise.resolve({ name: NODE_NAME, cpus: 2, totalCpus: 2, platform: PLATFORM, tcpHost: host, tcpPort: port }),
  });
  await responder.start();
  const client = dgram.createSocket('udp4');
  open.push({ responder, client });
  await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
  const received: Buffer[] = [];
  const waiters: Array<() => void> = [];
  client.on('message', (message) => {
    received.push(message);
    for (const wake of waiters.splice(0)) wake();
  });
  const sendThenSentinel = async (datagram: Buffer): Promise<Buffer[]> => {
    const from = received.length;
    const sentinel = newNonce();
    client.send(datagram, port, host);
    // Pings are handled in order, and a reply waits for describe() where a drop or a refusal
    // does not: once the sentinel's reply is here, whatever the first datagram caused is too.
    client.send(ping({ nonce: sentinel }), port, host);
    const answered = (): boolean => received.slice(from).some((message) => nonceOf(message).equals(sentinel));
    for (let turn = 0; turn < 100 && !answered(); turn++) await new Promise<void>((resolve) => waiters.push(resolve));
    expect(answered()).toBe(true);
    return received.slice(from).filter((message) => !nonceOf(message).equals(sentinel));
  };
  return { responder, host, port, lines, client, received, sendThenSentinel };
}

describe('DiscoveryResponder', () => {
  it('answers a signed ping once: the same ping replayed gets no answer', async () => {
    const node = await start('127.0.61.1');
    const nonce = newNonce();
    const captured = ping({ nonce });
    const first = await node.sendThenSentinel(captured);
    expect(first).toHaveLength(1);
    const reply = openDatagram(SECRET, first[0]!)!;
    expect(reply.authentic).toBe(true);
    expect(reply.body.reply).toMatchObject({ name: NODE_NAME, cpus: 2 });
    expect(nonceOf(first[0]!).equals(nonce)).toBe(true);
    // Encrypted: whoever watches the network reads nothing of the node, nor can anyone of another secret.
    const text = first[0]!.toString('latin1');
    for (const ofTheNode of [NODE_NAME, PLATFORM, 'plan9']) expect(text).not.toContain(ofTheNode);
    expect(openDatagram('another secret', first[0]!)).toMatchObject({ authentic: false, body: { reply: null } });
    for (let i = 0; i < 3; i++) expect(await node.sendThenSentinel(captured)).toEqual([]);
  });

  it('does not answer a signed ping sent more than the window before or after its clock', async () => {
    const node = await start('127.0.61.2');
    expect(await node.sendThenSentinel(ping({ sentAt: Date.now() - DATAGRAM_WINDOW_MS - 5000 }))).toEqual([]);
    expect(await node.sendThenSentinel(ping({ sentAt: Date.now() + DATAGRAM_WINDOW_MS + 5000 }))).toEqual([]);
    // Within the window, a slow clock still works.
    expect(await node.sendThenSentinel(ping({ sentAt: Date.now() - DATAGRAM_WINDOW_MS / 2 }))).toHaveLength(1);
  });

  it('sends no reply larger than its ping, and none to a ping too small for it', async () => {
    const node = await start('127.0.61.3');
    const padded = ping();
    expect(padded).toHaveLength(MAX_DATAGRAM_BYTES);
    const [reply] = await node.sendThenSentinel(padded);
    expect(reply!.length).toBeLessThanOrEqual(padded.length);
    const small = ping({ padTo: 0 });
    expect(small.length).toBeLessThan(100);
    expect(await node.sendThenSentinel(small)).toEqual([]);
    for (const message of node.received) expect(message.length).toBeLessThanOrEqual(MAX_DATAGRAM_BYTES);
  });

  it('tells a ping of another secret `refused`, no larger than it, naming nothing of the node and not under its secret', async () => {
    const node = await start('127.0.61.4');
    const foreign = ping({ secret: 'another secret' });
    const [refused] = await node.sendThenSentinel(foreign);
    expect(refused).toBeDefined();
    expect(refused!.length).toBeLessThanOrEqual(foreign.length);
    const opened = openDatagram('', refused!)!;
    expect(opened.body.refused?.reason).toBe('the secrets differ');
    // Sealed with the empty secret: no MAC under the node's, which would help guess it offline.
    expect(opened.authentic).toBe(true);
    expect(openDatagram(SECRET, refused!)!.authentic).toBe(false);
    const text = refused!.toString('latin1');
    for (const secretOfTheNode of [NODE_NAME, PLATFORM, 'plan9', 'node-', String(node.port)]) expect(text).not.toContain(secretOfTheNode);
    // A body of the kind, the ping's nonce, and the stamp: nothing else.
    expect(Object.keys(dispy.DiscoveryRefused.toObject(opened.body.refused as dispy.DiscoveryRefused))).toEqual(['nonce', 'reason']);
    expect(opened.body.refused!.nonce).toHaveLength(NONCE_BYTES);
  });

  it('tells a ping without a secret (in the clear) `refused` too', async () => {
    const node = await start('127.0.61.30');
    const [refused] = await node.sendThenSentinel(ping({ secret: '' }));
    expect(openDatagram('', refused!)?.body.refused?.reason).toBe('the secrets differ');
  });

  it('refuses one source once per interval, and never answers a foreign ping smaller than its refusal', async () => {
    const node = await start('127.0.61.5');
    expect(await node.sendThenSentinel(ping({ secret: 'other' }))).toHaveLength(1);
    // The same source again (a flood, or a spoofed victim): no more refusals for a while.
    for (let i = 0; i < 5; i++) expect(await node.sendThenSentinel(ping({ secret: 'other' }))).toEqual([]);

    const other = await start('127.0.61.6');
    const tiny = sealDatagram('other', { ping: {} });
    expect(tiny.length).toBeLessThan(80);
    expect(await other.sendThenSentinel(tiny)).toEqual([]);
    // The refusal it would have had is larger than the ping: it does not count against the source.
    expect(await other.sendThenSentinel(ping({ secret: 'other' }))).toHaveLength(1);
  });

  it('logs dropped datagrams as one summary a minute, never a line per datagram', async () => {
    const node = await start('127.0.61.7');
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const captured = ping();
      expect(await node.sendThenSentinel(captured)).toHaveLength(1);
      for (let i = 0; i < 20; i++) await node.sendThenSentinel(captured);
      for (let i = 0; i < 3; i++) await node.sendThenSentinel(ping({ sentAt: 1 }));
      // The first drop at once, the others summed: one line for 23 datagrams.
      expect(node.lines).toEqual(['discovery datagrams dropped in the last minute: 1 replayed']);
      vi.advanceTimersByTime(SUMMARY_INTERVAL_MS);
      expect(node.lines).toEqual([
        'discovery datagrams dropped in the last minute: 1 replayed',
        'discovery datagrams dropped in the last minute: 19 replayed, 3 stale',
      ]);
      for (let i = 0; i < 30; i++) await node.sendThenSentinel(captured);
      expect(node.lines).toHaveLength(2);
      vi.advanceTimersByTime(SUMMARY_INTERVAL_MS);
      expect(node.lines[2]).toBe('discovery datagrams dropped in the last minute: 30 replayed');
      vi.advanceTimersByTime(SUMMARY_INTERVAL_MS); // a quiet minute: no line, no timer left
      expect(node.lines).toHaveLength(3);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
