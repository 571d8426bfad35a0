import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { dispy, encodeArguments, frameHeader } from '@dispy/protocol';
import { DispyJob, JobCluster } from '../src/index.js';
import { startNode, stopAllNodes, type NodeProcess } from '../../../testing/dispynode-process.mjs';
import { startMitmProxy, type MitmProxy, type RelayedFrame } from '../../../testing/mitm-proxy.js';
import { captureClientLog } from './capture-client-log.js';

/*
 * A man in the middle between a real JobCluster and a real dispynode: the node, on 127.0.7x.1,
 * tells the client (--ext-host) to connect to the proxy on 127.0.7x.2, which relays, reads,
 * alters and injects frames. With a secret the connection is TLS with the secret's pre-shared
 * key: what the proxy relays is unreadable, and anything it changes or adds ends the connection
 * with DISPY_ERR_AUTH instead of reaching a job; without a secret the frames are plain, as they
 * always were.
 */

const SECRET = 'a man in the middle does not know this';
const ARG_MARKER = 'ARG-MARKER-7f3a9c1e';
const RESULT_MARKER = 'RESULT-MARKER-b41d';

const proxies: MitmProxy[] = [];
const clusters: Array<JobCluster<(s: string) => string>> = [];

afterEach(async () => {
  vi.restoreAllMocks();
  for (const cluster of clusters.splice(0)) await cluster.close({ timeout: 0 });
  for (const proxy of proxies.splice(0)) await proxy.close();
  await stopAllNodes();
});

/** A node on `${net}.1` whose clients connect through a proxy on `${net}.2`, and a cluster using it. */
async function setUp(
  net: string,
  secret?: string,
): Promise<{ node: NodeProcess; proxy: MitmProxy; cluster: JobCluster<(s: string) => string> }> {
  const proxyHost = `${net}.2`;
  const node = await startNode({ host: `${net}.1`, secret, args: ['--ext-host', proxyHost, '-d'] });
  const proxy = await startMitmProxy(proxyHost, node.host, node.port);
  proxies.push(proxy);
  const cluster = new JobCluster((s: string) => `RESULT-MARKER-b41d ${s.length}`, {
    // Pinged at the node's address; allowed at the address it tells clients to connect to (the proxy's).
    nodes: [node.host, proxyHost],
    nodePort: node.port,
    ipAddr: '127.0.0.1',
    port: 0,
    secret,
    loglevel: 'warn',
  });
  clusters.push(cluster);
  return { node, proxy, cluster };
}

/** A plain frame as an attacker without the secret would write it. */
function plainFrame(frame: dispy.IFrame, attachment?: Uint8Array): Buffer {
  const payload = dispy.Frame.encode(frame).finish();
  return Buffer.concat([frameHeader(payload.length, attachment?.length), payload, ...(attachment ? [attachment] : [])]);
}

/**
 * Records of encrypted data toward the node: the first is the end of TLS's handshake (Finished),
 * then each frame the client writes in its own tick is a record: Auth, Setup, then the job.
 */
const TOWARD_NODE = { auth: 1, setup: 2, job: 3 };

/** An encrypted record after TLS's handshake and dispy's (toward the client: the Hello and AuthResult). */
const afterHandshake = (frame: RelayedFrame): boolean => (frame.dataIndex ?? -1) >= (frame.direction === 'toNode' ? 2 : 3);

describe('a man in the middle', () => {
  it('reads nothing of the arguments, the results or the computation when there is a secret', async () => {
    const { proxy, cluster } = await setUp('127.0.70', SECRET);
    const job = cluster.submit(ARG_MARKER);
    expect(await job.wait()).toBe(`${RESULT_MARKER} ${ARG_MARKER.length}`);
    expect(proxy.frames.filter(afterHandshake).length).toBeGreaterThan(2);
    expect(proxy.frames.every((frame) => frame.tlsType !== undefined)).toBe(true);
    expect(proxy.seen('toNode').includes(ARG_MARKER)).toBe(false);
    expect(proxy.seen('toNode').includes(RESULT_MARKER)).toBe(false); // the computation's source
    expect(proxy.seen('toClient').includes(RESULT_MARKER)).toBe(false);
  });

  it('reads everything without a secret: frames stay plain, as before', async () => {
    const { proxy, cluster } = await setUp('127.0.71');
    expect(await cluster.submit(ARG_MARKER).wait()).toBe(`${RESULT_MARKER} ${ARG_MARKER.length}`);
    expect(proxy.seen('toNode').includes(ARG_MARKER)).toBe(true);
    expect(proxy.seen('toClient').includes(RESULT_MARKER)).toBe(true);
  });

  it('alters one byte of the arguments: the node ends the connection with DISPY_ERR_AUTH, and the job runs only on its true arguments', async () => {
    const log = captureClientLog();
    const { node, proxy, cluster } = await setUp('127.0.72', SECRET);
    let altered = false;
    proxy.tamper((frame) => {
      // The job's record: its arguments end its frame, just before the record's type and tag.
      if (altered || frame.direction !== 'toNode' || frame.dataIndex !== TOWARD_NODE.job) return frame.bytes;
      altered = true;
      const bytes = Buffer.from(frame.bytes);
      bytes[bytes.length - 20]! ^= 0x01;
      return bytes;
    });
    const job = cluster.submit(ARG_MARKER);
    await node.waitForLog(/a TLS record failed authentication/);
    expect(altered).toBe(true);
    await vi.waitFor(() => expect(log()).toMatch(/failed authentication/), { timeout: 10_000 });
    // The job is not run on the altered arguments: the client reconnects, the node says it never
    // had the job, and the client sends it again, untouched this time.
    expect(await job.wait()).toBe(`${RESULT_MARKER} ${ARG_MARKER.length}`);
    expect(log()).toMatch(/lost the link to node/);
  });

  it('alters one byte of a result: the client ends the connection with DISPY_ERR_AUTH, and takes only the true result', async () => {
    const log = captureClientLog();
    const { node, proxy, cluster } = await setUp('127.0.73', SECRET);
    // Once the job has gone to the node, the next record toward the client (its start, or its reply) is altered.
    let jobSent = false;
    let altered = 0;
    proxy.tamper((frame) => {
      if (frame.connection === 0 && frame.direction === 'toNode' && frame.dataIndex === TOWARD_NODE.job) jobSent = true;
      if (!jobSent || frame.direction !== 'toClient' || frame.tlsType !== 23 || altered > 0) return frame.bytes;
      altered++;
      const bytes = Buffer.from(frame.bytes);
      bytes[bytes.length - 1]! ^= 0x01;
      return bytes;
    });
    const job = cluster.submit(ARG_MARKER);
    await vi.waitFor(() => expect(log()).toMatch(/a TLS record failed authentication/), { timeout: 10_000 });
    await node.waitForLog(/failed authentication|disconnected/);
    expect(altered).toBe(1);
    // Nothing of the altered record was taken: the client reattaches, and the node's kept reply is the true result.
    expect(await job.wait()).toBe(`${RESULT_MARKER} ${ARG_MARKER.length}`);
    expect(log()).toMatch(/lost the link to node/);
  });

  it('injects a job and a file chunk: each side refuses the frame and ends the connection', async () => {
    const log = captureClientLog();
    const { node, proxy, cluster } = await setUp('127.0.74', SECRET);
    let injected = 0;
    proxy.tamper((frame) => {
      // Before the Setup toward the node, and before the first encrypted record after the AuthResult toward the client.
      if (frame.connection !== 0 || frame.dataIndex !== (frame.direction === 'toNode' ? TOWARD_NODE.setup : 3)) return frame.bytes;
      injected++;
      if (frame.direction === 'toNode') {
        const job = plainFrame({ job: { computeId: 'injected', jobId: 1 } }, encodeArguments(['injected']));
        return [job, frame.bytes];
      }
      const chunk = plainFrame(
        { fileChunk: { transferId: 1, path: 'planted/run.sh', offset: 0, last: true, size: 3 } },
        Buffer.from('#!\n'),
      );
      return [chunk, frame.bytes];
    });
    const job = cluster.submit(ARG_MARKER);
    await node.waitForLog(/a TLS record failed authentication/);
    await vi.waitFor(() => expect(log()).toMatch(/a TLS record failed authentication/), { timeout: 10_000 });
    expect(injected).toBeGreaterThan(0);
    // Refused by TLS before anything in it was read: the injected job never reached a computation.
    expect(node.log).not.toMatch(/computation injected/);
    expect(existsSync(path.join(process.cwd(), 'planted'))).toBe(false);
    expect(job.status).not.toBe(DispyJob.Finished);
  });
});
