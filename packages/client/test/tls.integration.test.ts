import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadClientTls, type ClientTlsFiles } from '@dispy/protocol';
import { NodeConnection } from '@dispy/scheduler';
import { DispyJob, JobCluster } from '../src/index.js';
import { startNode, stopAllNodes, type StartNodeOptions } from '../../../testing/dispynode-process.mjs';
import { makeTestCertificates, type TestCertificates } from '../../../testing/certificates.js';
import { captureClientLog } from './capture-client-log.js';

// This file's nodes serve on 127.0.73.*; the node certificates are for .1 to .20.
const IPS = Array.from({ length: 20 }, (_, i) => `127.0.73.${i + 1}`);
let certs: TestCertificates;

beforeAll(() => {
  certs = makeTestCertificates(IPS);
});
afterAll(() => certs.remove());
afterEach(async () => {
  vi.restoreAllMocks();
  await stopAllNodes();
});

const SECRET = 'tls tests secret';

function tlsNode(host: string, options: Partial<StartNodeOptions> = {}, args: string[] = []) {
  return startNode({ host, secret: SECRET, ...options, args: ['--certfile', certs.nodeCert, '--keyfile', certs.nodeKey, ...args] });
}

/** Opens one connection to a node as a client does, with these TLS files; resolves with how long it took to fail. */
async function refusal(host: string, port: number, files: ClientTlsFiles, secret = SECRET): Promise<{ error: Error; ms: number }> {
  const connection = new NodeConnection({
    host,
    port,
    secret,
    tls: loadClientTls(files, 'test'),
    clientName: 'test',
    onFrame: () => {},
    onClose: () => {},
  });
  const started = Date.now();
  const error = await connection.open().then(
    () => {
      connection.destroy();
      throw new Error('the connection opened');
    },
    (failure: Error) => failure,
  );
  return { error, ms: Date.now() - started };
}

function cluster(host: string, port: number, options: Record<string, unknown>): JobCluster<(n: number) => number> {
  return new JobCluster((n: number) => n * 2, {
    nodes: [host],
    nodePort: port,
    ipAddr: '127.0.0.1',
    port: 0,
    secret: SECRET,
    loglevel: 'error',
    ...options,
  });
}

describe('TLS with certificates', () => {
  it('runs jobs over TLS, verifying the node by the CA and its address', async () => {
    const node = await tlsNode('127.0.73.1');
    expect(node.log).toMatch(/\(TCP with TLS and UDP\)/);
    const c = cluster(node.host, node.port, { cafile: certs.ca });
    const jobs = [1, 2, 3].map((n) => c.submit(n));
    expect(await Promise.all(jobs.map((job) => job.wait()))).toEqual([2, 4, 6]);
    await c.close();
  });

  it('refuses a node whose certificate another CA signed, and the cluster says why', async () => {
    const node = await tlsNode('127.0.73.2');
    const { error } = await refusal(node.host, node.port, { cafile: certs.otherCa });
    expect(error.name).toBe('AuthError');
    expect(error.message).toMatch(
      /node 127\.0\.73\.2:\d+'s certificate is not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\): give the cafile/,
    );
    const log = captureClientLog();
    const c = cluster(node.host, node.port, { cafile: certs.otherCa });
    const job = c.submit(1);
    await vi.waitFor(() => expect(log()).toMatch(/certificate is not trusted/), { timeout: 10_000 });
    expect(job.status).toBe(DispyJob.Created);
    await c.close({ timeout: 0 });
  });

  it('refuses a node whose certificate is not for the address connected to', async () => {
    // The node's certificate names 127.0.73.1 to .20; this node serves on .30.
    const node = await tlsNode('127.0.73.30');
    const { error } = await refusal(node.host, node.port, { cafile: certs.ca });
    expect(error.name).toBe('AuthError');
    expect(error.message).toMatch(
      /node 127\.0\.73\.30:\d+'s certificate is not for this address .*needs 127\.0\.73\.30 among its subject alternative names \(IP:127\.0\.73\.30\)/,
    );
  });

  it('accepts a self-signed node by its pinned fingerprint, and refuses a wrong pin', async () => {
    const node = await startNode({
      host: '127.0.73.3',
      secret: SECRET,
      args: ['--certfile', certs.selfSignedCert, '--keyfile', certs.selfSignedKey],
    });
    const c = cluster(node.host, node.port, { certFingerprint: certs.selfSignedFingerprint.toLowerCase() });
    expect(await c.submit(21).wait()).toBe(42);
    await c.close();
    const wrong = 'AB'.repeat(32);
    const { error } = await refusal(node.host, node.port, { certFingerprint: wrong });
    expect(error.message).toMatch(
      /node 127\.0\.73\.3:\d+'s certificate \(SHA-256 [0-9A-F]{64}\) is not the pinned one \(certFingerprint\)/,
    );
    // Without the pin, the self-signed certificate is not trusted.
    expect((await refusal(node.host, node.port, { cafile: certs.ca })).error.message).toMatch(/certificate is not trusted/);
  });

  it('with --require-client-cert, serves a client with a certificate signed by --cafile and refuses one without', async () => {
    const node = await tlsNode('127.0.73.4', {}, ['--cafile', certs.ca, '--require-client-cert']);
    expect(node.log).toMatch(/clients must present a certificate/);
    const c = cluster(node.host, node.port, { cafile: certs.ca, certfile: certs.clientCert, keyfile: certs.clientKey });
    expect(await c.submit(5).wait()).toBe(10);
    await c.close();
    const { error } = await refusal(node.host, node.port, { cafile: certs.ca });
    expect(error.name).toBe('AuthError');
    expect(error.message).toMatch(
      /node 127\.0\.73\.4:\d+: this node requires a client certificate signed by its --cafile \(--require-client-cert\): give the client a keyfile and certfile/,
    );
    await node.waitForLog(
      /client 127\.0\.0\.1:\d+: it presented no certificate, and this node requires one \(--require-client-cert\); refused/,
    );
  });

  it('refuses a client whose certificate another CA signed (mutual TLS)', async () => {
    const node = await tlsNode('127.0.73.5', {}, ['--cafile', certs.otherCa, '--require-client-cert']);
    const { error } = await refusal(node.host, node.port, { cafile: certs.ca, certfile: certs.clientCert, keyfile: certs.clientKey });
    expect(error.message).toMatch(/this node requires a client certificate signed by its --cafile/);
    await node.waitForLog(/client 127\.0\.0\.1:\d+: its certificate is not signed by this node's --cafile \([A-Z_]+\); refused/);
  });

  it('still requires the secret inside TLS', async () => {
    const node = await tlsNode('127.0.73.6');
    const { error } = await refusal(node.host, node.port, { cafile: certs.ca }, 'another secret');
    expect(error.message).toMatch(/refused this client: the client's secret does not match the node's/);
    await node.waitForLog(/failed authentication: its secret differs/);
  });
});

describe('TLS facing plain', () => {
  // Plain: neither certificates nor a secret (with a secret, the connection is TLS with its key).
  it('a TLS client and a plain node both fail at once, naming the fix', async () => {
    const node = await startNode({ host: '127.0.73.7', secret: '' });
    const { error, ms } = await refusal(node.host, node.port, { cafile: certs.ca }, '');
    expect(error.name).toBe('AuthError');
    expect(error.message).toMatch(
      /node 127\.0\.73\.7:\d+ does not use TLS \(it answered in plain\): start it with --certfile and --keyfile, or give this client no cafile/,
    );
    // Far below the 10 s the handshake would wait.
    expect(ms).toBeLessThan(5000);
    await node.waitForLog(
      /client 127\.0\.0\.1:\d+ tried TLS: it has a secret, or TLS files, and this node has neither \(start it with the secret, or --certfile and --keyfile\); refused/,
    );
  });

  it('a plain client and a TLS node both fail within about a second, naming the fix', async () => {
    const node = await tlsNode('127.0.73.8', { secret: '' });
    const { error, ms } = await refusal(node.host, node.port, {}, '');
    expect(error.name).toBe('AuthError');
    expect(error.message).toMatch(/node 127\.0\.73\.8:\d+: this node requires TLS \(--certfile\): give the client a cafile/);
    expect(ms).toBeLessThan(5000);
    await node.waitForLog(
      /client 127\.0\.0\.1:\d+ sent nothing for 1000 ms: it does not use TLS, which this node requires \(give the client a cafile\); refused/,
    );
  });

  it('a plain cluster facing a TLS node logs why it is not used', async () => {
    const node = await tlsNode('127.0.73.9', { secret: '' });
    const log = captureClientLog();
    const c = cluster(node.host, node.port, { secret: '' });
    const job = c.submit(1);
    await vi.waitFor(() => expect(log()).toMatch(/this node requires TLS/), { timeout: 10_000 });
    expect(job.status).toBe(DispyJob.Created);
    await c.close({ timeout: 0 });
  });
});

describe("TLS with certificates facing the secret's TLS", () => {
  it('a client with only the secret and a node with a certificate: the client names the fix at once', async () => {
    const node = await tlsNode('127.0.73.10');
    const { error, ms } = await refusal(node.host, node.port, {});
    expect(error.name).toBe('AuthError');
    expect(error.message).toMatch(/node 127\.0\.73\.10:\d+ serves TLS with a certificate: give this client the cafile that signed it/);
    expect(ms).toBeLessThan(5000);
  });

  it('a client with a CA and a node with only the secret: both fail at once', async () => {
    const node = await startNode({ host: '127.0.73.11', secret: SECRET });
    expect(node.log).toMatch(/\(TCP with the secret's TLS and UDP\)/);
    const { error, ms } = await refusal(node.host, node.port, { cafile: certs.ca });
    expect(error.name).toBe('AuthError');
    expect(error.message).toMatch(
      /node 127\.0\.73\.11:\d+ refused this client's TLS \(ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE\): it has no certificate \(it may use only the secret's TLS: then give this client no cafile/,
    );
    expect(ms).toBeLessThan(5000);
    await node.waitForLog(
      /client 127\.0\.0\.1: it began TLS with certificates .* this node has no certificate, only the secret's TLS; refused/,
    );
  });
});
