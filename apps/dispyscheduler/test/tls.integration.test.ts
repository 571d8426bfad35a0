/*
 * dispyscheduler with TLS, real processes over loopback (127.0.74.*), certificates made at test
 * time: TLS toward the nodes (--node-*) and toward the SharedJobClusters (--cluster-*), mutual TLS
 * both ways, and each mismatch, which fails at once on both sides with an error naming the fix.
 */
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadClientTls, type ClientTlsFiles } from '@dispy/protocol';
import { DispyScheduler, NodeConnection } from '@dispy/scheduler';
import { DispyJob, SharedJobCluster } from '@dispy/client';
import { freePort, startNode, stopAllNodes, type NodeProcess } from '../../../testing/dispynode-process.mjs';
import { startScheduler, stopAllSchedulers, type SchedulerProcess } from '../../../testing/dispyscheduler-process.mjs';
import { makeTestCertificates, type TestCertificates } from '../../../testing/certificates.js';

// This file's processes serve on 127.0.74.*; the server certificates are for .1 to .20.
const IPS = Array.from({ length: 20 }, (_, i) => `127.0.74.${i + 1}`);
const NODE_SECRET = 'node secret of the scheduler TLS tests';
const CLUSTER_SECRET = 'cluster secret of the scheduler TLS tests';
let certs: TestCertificates;
const clusters: SharedJobCluster[] = [];

beforeAll(() => {
  certs = makeTestCertificates(IPS);
});
afterAll(() => certs.remove());
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 1 })));
  await stopAllSchedulers();
  await stopAllNodes();
});

/** Flags of a node serving TLS with the CA-signed certificate. */
const nodeTlsArgs = (): string[] => ['--certfile', certs.nodeCert, '--keyfile', certs.nodeKey];
/** Flags of a scheduler serving its clients TLS with the CA-signed certificate. */
const clusterTlsArgs = (): string[] => ['--cluster-certfile', certs.nodeCert, '--cluster-keyfile', certs.nodeKey];

function node(host: string, args: string[] = [], secret = NODE_SECRET): Promise<NodeProcess> {
  return startNode({ host, secret, args: ['--ping-interval', '1', ...args] });
}

/** A scheduler on `host` for `nodes` (a node's address and port; none: an address where no node is). */
async function scheduler(
  host: string,
  args: string[],
  nodes?: NodeProcess,
  { nodeSecret = NODE_SECRET, clusterSecret = CLUSTER_SECRET } = {},
): Promise<SchedulerProcess> {
  return startScheduler({
    host,
    nodes: [nodes?.host ?? '127.0.74.250'],
    nodePort: nodes?.port ?? (await freePort('127.0.0.1')),
    nodeSecret,
    clusterSecret,
    args: ['--ping-interval', '1', ...args],
  });
}

function sharedCluster(at: SchedulerProcess, options: Record<string, unknown>): SharedJobCluster<(n: number) => number> {
  const cluster = new SharedJobCluster((n: number) => n * 3, {
    schedulerNode: at.host,
    schedulerPort: at.port,
    secret: CLUSTER_SECRET,
    loglevel: 'silent',
    recoverFile: false,
    ...options,
  });
  clusters.push(cluster);
  return cluster;
}

/** Opens one connection to the scheduler as a SharedJobCluster does, with these TLS files; resolves with how long it took to fail. */
async function refusal(at: SchedulerProcess, files: ClientTlsFiles, secret = CLUSTER_SECRET): Promise<{ error: Error; ms: number }> {
  const connection = new NodeConnection({
    host: at.host,
    port: at.port,
    secret,
    tls: loadClientTls(files, 'test'),
    clientName: 'test',
    peerKind: 'dispyscheduler',
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

describe('dispyscheduler with TLS', () => {
  it('runs jobs with TLS toward the nodes and toward the clients, verifying both by the CA and their addresses', async () => {
    const tlsNode = await node('127.0.74.2', nodeTlsArgs());
    const sched = await scheduler('127.0.74.1', ['--node-cafile', certs.ca, ...clusterTlsArgs()], tlsNode);
    expect(sched.log).toMatch(/serving SharedJobClusters at 127\.0\.74\.1:\d+ with TLS; nodes 127\.0\.74\.2 with TLS/);
    const cluster = sharedCluster(sched, { cafile: certs.ca });
    const jobs = [1, 2, 3, 4].map((n) => cluster.submit(n));
    expect(await Promise.all(jobs.map((job) => job.wait()))).toEqual([3, 6, 9, 12]);
    expect(jobs.every((job) => job.ipAddr === tlsNode.host)).toBe(true);
    expect(sched.log).not.toMatch(/TLS failed|does not use TLS|refused/);
  });

  it('mutual TLS both ways: the nodes verify the scheduler, the scheduler verifies its clients', async () => {
    const tlsNode = await node('127.0.74.3', [...nodeTlsArgs(), '--cafile', certs.ca, '--require-client-cert']);
    const sched = await scheduler(
      '127.0.74.4',
      [
        '--node-cafile',
        certs.ca,
        '--node-certfile',
        certs.clientCert,
        '--node-keyfile',
        certs.clientKey,
        ...clusterTlsArgs(),
        '--cluster-cafile',
        certs.ca,
        '--require-client-cert',
      ],
      tlsNode,
    );
    expect(sched.log).toMatch(/with TLS \(clients must present a certificate signed by --cluster-cafile\)/);
    const cluster = sharedCluster(sched, { cafile: certs.ca, certfile: certs.clientCert, keyfile: certs.clientKey });
    expect(await cluster.submit(7).wait()).toBe(21);

    // A client without a certificate is refused, inside TLS, with the reason; the scheduler logs it.
    const { error, ms } = await refusal(sched, { cafile: certs.ca });
    expect(error.name).toBe('AuthError');
    expect(error.message).toMatch(
      /dispyscheduler 127\.0\.74\.4:\d+: this dispyscheduler requires a client certificate signed by its --cluster-cafile \(--require-client-cert\): give the SharedJobCluster a keyfile and certfile/,
    );
    expect(ms).toBeLessThan(5000);
    await sched.waitForLog(
      /client 127\.0\.0\.1:\d+: it presented no certificate, and this dispyscheduler requires one \(--require-client-cert\); refused/,
    );
  });

  it('accepts a self-signed scheduler by its pinned fingerprint, and a self-signed node by --node-cert-fingerprint', async () => {
    const selfSigned = ['--certfile', certs.selfSignedCert, '--keyfile', certs.selfSignedKey];
    const tlsNode = await node('127.0.74.5', selfSigned);
    const sched = await scheduler(
      '127.0.74.6',
      [
        '--node-cert-fingerprint',
        certs.selfSignedFingerprint,
        '--cluster-certfile',
        certs.selfSignedCert,
        '--cluster-keyfile',
        certs.selfSignedKey,
      ],
      tlsNode,
    );
    const cluster = sharedCluster(sched, { certFingerprint: certs.selfSignedFingerprint.toLowerCase() });
    expect(await cluster.submit(5).wait()).toBe(15);
    const wrong = 'AB'.repeat(32);
    expect((await refusal(sched, { certFingerprint: wrong })).error.message).toMatch(
      /dispyscheduler 127\.0\.74\.6:\d+'s certificate \(SHA-256 [0-9A-F]{64}\) is not the pinned one \(certFingerprint\)/,
    );
  });
});

/** Plain: neither certificates nor a secret (with a secret, a connection is TLS with its pre-shared key). */
const PLAIN = { nodeSecret: '', clusterSecret: '' };

describe('dispyscheduler and its clients: each mismatch fails at once on both sides, naming the fix', () => {
  it('a TLS client and a plain scheduler', async () => {
    const sched = await scheduler('127.0.74.7', [], undefined, PLAIN);
    const { error, ms } = await refusal(sched, { cafile: certs.ca }, '');
    expect(error.name).toBe('AuthError');
    expect(error.message).toMatch(
      /dispyscheduler 127\.0\.74\.7:\d+ does not use TLS \(it answered in plain\): start it with --cluster-certfile and --cluster-keyfile, or give this client no cafile, certfile or certFingerprint/,
    );
    expect(ms).toBeLessThan(5000);
    await sched.waitForLog(
      /client 127\.0\.0\.1:\d+ tried TLS: it has a cluster secret, or TLS files, and this dispyscheduler has neither \(start it with --cluster-secret, or --cluster-certfile and --cluster-keyfile\); refused/,
    );
    // A SharedJobCluster's jobs end with that reason.
    const cluster = sharedCluster(sched, { cafile: certs.ca, secret: '' });
    const job = cluster.submit(1);
    expect(await job.wait()).toBeUndefined();
    expect(job.status).toBe(DispyJob.Cancelled);
    expect(job.exception).toMatch(/could not use dispyscheduler: dispyscheduler 127\.0\.74\.7:\d+ does not use TLS/);
  });

  it('a plain client and a TLS scheduler', async () => {
    const sched = await scheduler('127.0.74.8', clusterTlsArgs(), undefined, PLAIN);
    const { error, ms } = await refusal(sched, {}, '');
    expect(error.name).toBe('AuthError');
    expect(error.message).toMatch(
      /dispyscheduler 127\.0\.74\.8:\d+: this dispyscheduler requires TLS \(--cluster-certfile\): give the SharedJobCluster a cafile/,
    );
    expect(ms).toBeLessThan(5000);
    await sched.waitForLog(
      /client 127\.0\.0\.1:\d+ sent nothing for 1000 ms: it does not use TLS, which this dispyscheduler requires \(give the SharedJobCluster a cafile\); refused/,
    );
    const cluster = sharedCluster(sched, { secret: '' });
    const job = cluster.submit(1);
    expect(await job.wait()).toBeUndefined();
    expect(job.exception).toMatch(/could not use dispyscheduler: dispyscheduler 127\.0\.74\.8:\d+: this dispyscheduler requires TLS/);
  });

  it("a client with only the cluster secret and a scheduler with a certificate; a client with a CA and a scheduler with only the secret's TLS", async () => {
    const certified = await scheduler('127.0.74.19', clusterTlsArgs());
    const secretOnly = await refusal(certified, {});
    expect(secretOnly.error.message).toMatch(
      /dispyscheduler 127\.0\.74\.19:\d+ serves TLS with a certificate: give this client the cafile/,
    );
    const pskScheduler = await scheduler('127.0.74.20', []);
    expect(pskScheduler.log).toMatch(/serving SharedJobClusters at 127\.0\.74\.20:\d+ with the cluster secret's TLS/);
    const withCa = await refusal(pskScheduler, { cafile: certs.ca });
    expect(withCa.error.message).toMatch(
      /dispyscheduler 127\.0\.74\.20:\d+ refused this client's TLS \(ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE\)/,
    );
    await pskScheduler.waitForLog(
      /it began TLS with certificates .* this dispyscheduler has no certificate, only the secret's TLS; refused/,
    );
  });

  it('a client trusting another CA, and a scheduler whose certificate is not for its address', async () => {
    const sched = await scheduler('127.0.74.9', clusterTlsArgs());
    const untrusted = await refusal(sched, { cafile: certs.otherCa });
    expect(untrusted.error.name).toBe('AuthError');
    expect(untrusted.error.message).toMatch(
      /dispyscheduler 127\.0\.74\.9:\d+'s certificate is not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\): give the cafile of the CA that signed it, or pin it with certFingerprint/,
    );
    // The certificate names 127.0.74.1 to .20; this scheduler serves on .30.
    const elsewhere = await scheduler('127.0.74.30', clusterTlsArgs());
    const { error } = await refusal(elsewhere, { cafile: certs.ca });
    expect(error.message).toMatch(
      /dispyscheduler 127\.0\.74\.30:\d+'s certificate is not for this address .*the dispyscheduler's certificate needs 127\.0\.74\.30 among its subject alternative names \(IP:127\.0\.74\.30\)/,
    );
  });

  it('a client certificate another CA signed, with --require-client-cert', async () => {
    const sched = await scheduler('127.0.74.10', [...clusterTlsArgs(), '--cluster-cafile', certs.otherCa, '--require-client-cert']);
    const { error } = await refusal(sched, { cafile: certs.ca, certfile: certs.clientCert, keyfile: certs.clientKey });
    expect(error.message).toMatch(/this dispyscheduler requires a client certificate signed by its --cluster-cafile/);
    await sched.waitForLog(
      /client 127\.0\.0\.1:\d+: its certificate is not signed by this dispyscheduler's --cluster-cafile \([A-Z_]+\); refused/,
    );
  });
});

describe('dispyscheduler and its nodes: each mismatch is logged on both sides, naming the fix', () => {
  it('a TLS scheduler and a plain node', async () => {
    const plainNode = await node('127.0.74.11', [], '');
    const sched = await scheduler('127.0.74.12', ['--node-cafile', certs.ca], plainNode, { nodeSecret: '' });
    sharedCluster(sched, {}).submit(1);
    await sched.waitForLog(
      /node 127\.0\.74\.11:\d+ does not use TLS \(it answered in plain\): start it with --certfile and --keyfile, or give this client no nodeCafile, nodeCertfile or nodeCertFingerprint/,
    );
    await plainNode.waitForLog(
      /tried TLS: it has a secret, or TLS files, and this node has neither \(start it with the secret, or --certfile and --keyfile\); refused/,
    );
  });

  it('a plain scheduler and a TLS node', async () => {
    const tlsNode = await node('127.0.74.13', nodeTlsArgs(), '');
    const sched = await scheduler('127.0.74.14', [], tlsNode, { nodeSecret: '' });
    sharedCluster(sched, {}).submit(1);
    await sched.waitForLog(/this node requires TLS \(--certfile\): .*\(dispyscheduler: --node-cafile or --node-cert-fingerprint\)/);
    await tlsNode.waitForLog(/it does not use TLS, which this node requires/);
  });

  it('a scheduler trusting another CA, and a node requiring a certificate the scheduler does not present', async () => {
    const tlsNode = await node('127.0.74.15', nodeTlsArgs());
    const sched = await scheduler('127.0.74.16', ['--node-cafile', certs.otherCa], tlsNode);
    sharedCluster(sched, {}).submit(1);
    await sched.waitForLog(
      /node 127\.0\.74\.15:\d+'s certificate is not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\): give the nodeCafile of the CA that signed it, or pin it with nodeCertFingerprint/,
    );

    const mutualNode = await node('127.0.74.17', [...nodeTlsArgs(), '--cafile', certs.ca, '--require-client-cert']);
    const noCert = await scheduler('127.0.74.18', ['--node-cafile', certs.ca], mutualNode);
    sharedCluster(noCert, {}).submit(1);
    await noCert.waitForLog(/this node requires a client certificate signed by its --cafile \(--require-client-cert\)/);
    await mutualNode.waitForLog(/it presented no certificate, and this node requires one \(--require-client-cert\); refused/);
  });
});

describe('dispyscheduler with TLS stopping', () => {
  it('stops at once while a client is halfway through its TLS handshake', async () => {
    const sched = await scheduler('127.0.74.19', [...clusterTlsArgs(), '--debug']);
    const socket = net.connect({ host: sched.host, port: sched.port });
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    try {
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      // The start of a TLS handshake record, and nothing more: the scheduler hands it to TLS and waits.
      socket.write(Buffer.from([0x16, 0x03, 0x01, 0x01, 0x00]));
      await sched.waitForLog(/client 127\.0\.0\.1:\d+ began a TLS handshake/);
      await sched.stop('SIGTERM');
      // Stopped by SIGTERM's clean path (exit code 0), not by the SIGKILL 5 s later.
      expect(sched.child.exitCode).toBe(0);
      await closed;
    } finally {
      socket.destroy();
    }
  });
});

describe('dispyscheduler TLS options', () => {
  it('refuses wrong TLS options at construction, naming the option and the file', () => {
    expect(() => new DispyScheduler({ clusterKeyfile: certs.nodeKey })).toThrow(
      'dispyscheduler: option "clusterKeyfile" needs "clusterCertfile" (the scheduler\'s certificate)',
    );
    expect(() => new DispyScheduler({ requireClientCert: true })).toThrow(/option "requireClientCert" needs "clusterCertfile"/);
    expect(() => new DispyScheduler({ nodeKeyfile: certs.clientKey })).toThrow(/option "nodeKeyfile" needs "nodeCertfile"/);
    expect(() => new DispyScheduler({ nodeCafile: '/nonexistent/ca.pem' })).toThrow(
      /dispyscheduler: option "nodeCafile": \/nonexistent\/ca\.pem cannot be read/,
    );
    expect(() => new DispyScheduler({ clusterCertfile: certs.nodeKey })).toThrow(/option "clusterCertfile": .* holds no PEM certificate/);
    expect(() => new DispyScheduler({ nodeCertFingerprint: 'nope' })).toThrow(
      /option "nodeCertFingerprint": must be a SHA-256 fingerprint/,
    );
    expect(() => new DispyScheduler({ clusterCertfile: certs.nodeCert, clusterKeyfile: certs.clientKey })).toThrow(
      /the TLS files \(clusterKeyfile, clusterCertfile, clusterCafile\) are not usable/,
    );
  });
});
