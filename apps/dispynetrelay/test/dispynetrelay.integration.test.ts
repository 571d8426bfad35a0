import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_DATAGRAM_BYTES, openDatagram, sealDatagram } from '@dispy/protocol';
import { freePort } from '../../../testing/dispynode-process.mjs';

// Loopback addresses of this file's own: the relay on 127.0.124.1, a client on .2, a node on .11.
const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const SECRET = 'cli relay secret';

const children: ChildProcess[] = [];
const sockets: dgram.Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.close();
  await Promise.all(
    children.splice(0).map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
    }),
  );
});

function start(args: string[]): {
  child: ChildProcess;
  log: () => string;
  logged: (pattern: RegExp) => Promise<void>;
  exit: Promise<number | null>;
} {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, DISPY_SECRET: SECRET }, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let log = '';
  const watchers: Array<() => void> = [];
  child.stderr.on('data', (chunk: Buffer) => {
    log += chunk.toString();
    for (const wake of watchers.splice(0)) wake();
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const logged = async (pattern: RegExp): Promise<void> => {
    let exited = false;
    void exit.then(() => {
      exited = true;
      for (const wake of watchers.splice(0)) wake();
    });
    for (let turn = 0; turn < 200 && !pattern.test(log) && !exited; turn++) await new Promise<void>((resolve) => watchers.push(resolve));
    expect(log).toMatch(pattern);
  };
  return { child, log: () => log, logged, exit };
}

async function udp(host: string) {
  const socket = dgram.createSocket('udp4');
  sockets.push(socket);
  const received: Buffer[] = [];
  const waiters: Array<() => void> = [];
  socket.on('message', (message) => {
    received.push(message);
    for (const wake of waiters.splice(0)) wake();
  });
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  const next = (): Promise<Buffer> =>
    received.length > 0 ? Promise.resolve(received.shift()!) : new Promise<void>((resolve) => waiters.push(resolve)).then(next);
  return { socket, port: socket.address().port, next };
}

describe('npx dispynetrelay', () => {
  it('logs its addresses, relays a ping and its answer, and stops on SIGTERM with exit code 0', async () => {
    const node = await udp('127.0.124.11');
    node.socket.on('message', (message, remote) => {
      const ping = openDatagram(SECRET, message);
      if (ping?.body.kind !== 'ping') return;
      node.socket.send(
        sealDatagram(SECRET, { reply: { nonce: ping.body.nonce, name: 'n', cpus: 1, tcpHost: '127.0.124.11', tcpPort: 1 } }),
        remote.port,
        remote.address,
      );
    });
    const relayPort = await freePort('127.0.124.1');
    const relay = start([
      '-i',
      '127.0.124.1',
      '--relay-port',
      String(relayPort),
      '--scheduler-port',
      '0',
      '-n',
      `127.0.124.11:${node.port}`,
      '--daemon',
    ]);
    await relay.logged(/relaying pings heard on 127\.0\.124\.1:\d+ \(UDP\) to nodes at 127\.0\.124\.11:\d+/);
    const client = await udp('127.0.124.2');
    client.socket.send(sealDatagram(SECRET, { ping: {} }, { padTo: MAX_DATAGRAM_BYTES }), relayPort, '127.0.124.1');
    const answer = openDatagram(SECRET, await client.next())!;
    expect(answer.body.relayedReply).toMatchObject({ sourceHost: '127.0.124.11', reply: { name: 'n' } });
    relay.child.kill('SIGTERM');
    expect(await relay.exit).toBe(0);
  });

  it('exits with code 1 and says why when its port is taken', async () => {
    const holder = await udp('127.0.124.1');
    const relay = start(['-i', '127.0.124.1', '--relay-port', String(holder.port), '--scheduler-port', '0', '--daemon']);
    expect(await relay.exit).toBe(1);
    expect(relay.log()).toMatch(/cannot listen on 127\.0\.124\.1 port \d+ \(UDP\).*--relay-port/);
  });

  it('exits with code 2 on a wrong flag', async () => {
    const relay = start(['--dispy-port', 'x']);
    expect(await relay.exit).toBe(2);
    expect(relay.log()).toMatch(/--dispy-port must be an integer, got "x"/);
  });
});
