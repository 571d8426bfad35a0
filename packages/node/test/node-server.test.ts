import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DispyError, ErrorCode, OptionError } from '@dispy/protocol';
import { DispyNodeServer } from '../src/node-server.js';
import { freePort } from '../../../testing/dispynode-process.mjs';

let prefix: string;

beforeEach(() => {
  prefix = mkdtempSync(path.join(os.tmpdir(), 'dispy-server-test-'));
});

afterEach(() => rmSync(prefix, { recursive: true, force: true }));

/** Servers, sockets and timers open in this process (once handles being closed are gone). */
async function handles(): Promise<{ servers: string[]; timers: number }> {
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
  const open = process.getActiveResourcesInfo();
  return { servers: open.filter((kind) => /TCP|UDP/.test(kind)), timers: open.filter((kind) => kind === 'Timeout').length };
}

/** Nothing was left open since `before`. */
async function expectNothingLeft(before: Awaited<ReturnType<typeof handles>>): Promise<void> {
  const after = await handles();
  expect(after.servers).toEqual(before.servers);
  expect(after.timers).toBeLessThanOrEqual(before.timers);
}

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

describe('DispyNodeServer.start', () => {
  it('closes the TCP servers it bound when a later address fails, and rejects with DISPY_ERR_START', async () => {
    const host = '127.0.56.1';
    const port = await freePort(host);
    const before = await handles();
    const node = new DispyNodeServer({ hosts: [host, host], port, destPathPrefix: prefix, loglevel: 'silent', cpus: 1 });
    const failure = await node.start().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(DispyError.isInstance(failure)).toBe(true);
    expect(failure).toMatchObject({
      code: ErrorCode.START,
      message: expect.stringContaining(`cannot serve on ${host} port ${port} (TCP)`),
    });
    expect((failure as Error).message).toContain('EADDRINUSE');
    await expectNothingLeft(before);
    expect(await canListen(host, port)).toBe(true);
    await node.finished; // a failed start has stopped the node
  });

  it('closes its TCP server when the UDP port is taken', async () => {
    const host = '127.0.56.2';
    const port = await freePort(host);
    const blocker = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => blocker.bind(port, host, resolve));
    try {
      const before = await handles();
      const node = new DispyNodeServer({ hosts: [host], port, destPathPrefix: prefix, loglevel: 'silent', cpus: 1 });
      await expect(node.start()).rejects.toMatchObject({
        code: ErrorCode.START,
        message: expect.stringContaining(`cannot serve on ${host} port ${port} (UDP)`),
      });
      await expectNothingLeft(before);
      expect(await canListen(host, port)).toBe(true);
    } finally {
      await new Promise<void>((resolve) => blocker.close(resolve));
    }
  });

  it('serves after a clean start and leaves nothing open once closed', async () => {
    const before = await handles();
    const node = new DispyNodeServer({ hosts: ['127.0.56.3'], port: 0, destPathPrefix: prefix, loglevel: 'silent', cpus: 1 });
    await node.start();
    expect(node.address.port).toBeGreaterThan(0);
    await node.close();
    await expectNothingLeft(before);
  });
});

describe('DispyNodeServer options', () => {
  it('throws OptionError from setCpus for a count out of range', () => {
    const node = new DispyNodeServer({ cpus: 1, loglevel: 'silent', destPathPrefix: prefix });
    expect(() => node.setCpus(2)).toThrow(OptionError);
    expect(() => node.setCpus(1.5)).toThrow(/cpus must be an integer from -1 to 1, got 1.5/);
    expect(node.setCpus(0)).toBe(0);
  });

  it('takes the log level as loglevel or as logLevel, and refuses both when they differ', () => {
    expect(new DispyNodeServer({ loglevel: 'debug', destPathPrefix: prefix }).options.loglevel).toBe('debug');
    expect(new DispyNodeServer({ logLevel: 'warn', destPathPrefix: prefix }).options.loglevel).toBe('warn');
    expect(new DispyNodeServer({ destPathPrefix: prefix }).options.loglevel).toBe('info');
    expect(() => new DispyNodeServer({ loglevel: 'debug', logLevel: 'warn' })).toThrow(OptionError);
  });

  it('throws OptionError for more CPUs than the machine has', () => {
    expect(() => new DispyNodeServer({ cpus: os.availableParallelism() + 1 })).toThrow(OptionError);
  });
});
