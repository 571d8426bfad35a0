// dispy's protected channel: what TLS with the secret's pre-shared key (a shared secret) costs,
// and what TLS with certificates (and the secret) costs, as ratios to plain frames (no secret)
// measured in the same run, on one real dispynode (2 CPUs) on loopback. Three workloads, each run
// plain, then with the secret, then with certificates, on a node of its own each (the TLS certificates are made at bench time, with
// testing/certificates.ts):
//  - throughput: 5,000 tiny `n => n * 2` jobs at once;
//  - 1 MiB arguments: 100 jobs at once, each with its own 1 MiB Uint8Array;
//  - a file: a fresh cluster with one 64 MiB `depends` file, until its first job resolves.
// Each reports its cold first round (the first after connecting: code paths not yet compiled)
// beside the median of the warm rounds that follow.
import { tsImport } from 'tsx/esm/api';
import { DispyJob, JobCluster } from '../../packages/client/dist/index.js';
import { MiB, createBigFile } from '../lib/big-file.mjs';
import { startNode } from '../../testing/dispynode-process.mjs';
import { batchRound } from '../lib/batch-round.mjs';
import { median } from '../lib/stats.mjs';
import { now, withTimeout } from '../lib/timing.mjs';

const HOST = '127.0.0.1';
const NODE_CPUS = 2;
const SECRET = 'a bench secret that is long enough';
const TINY_JOBS = 5_000;
const ARG_JOBS = 100;
const FILE_BYTES = 64 * MiB;
const FILE_NAME = 'dispy-bench-channel.bin';
const WARM_ROUNDS = 3;
const ROUND_TIMEOUT_S = 120;
const JOB_TIMEOUT_MS = 120_000;
const CLOSE_TIMEOUT_MS = 15_000;

// prettier-ignore
const statFile = () => { const fs = require('node:fs'); return fs.existsSync('dispy-bench-channel.bin') ? fs.statSync('dispy-bench-channel.bin').size : -1; };

function expectFinished(job, expected, what) {
  if (job.status !== DispyJob.Finished || job.result !== expected) {
    throw new Error(`${what} ended ${DispyJob.statusName(job.status)} with ${JSON.stringify(job.result)}, not ${expected}`);
  }
}

/** Cold round and warm rounds of `round()` (each resolving to ms). */
async function rounds(round) {
  const cold = await round();
  const warm = [];
  for (let i = 0; i < WARM_ROUNDS; i++) warm.push(await round());
  return { cold, warm: median(warm), all: [cold, ...warm] };
}

async function withCluster(node, channel, computation, options, use) {
  const cluster = new JobCluster(computation, {
    nodes: [node.host],
    nodePort: node.port,
    ipAddr: node.host,
    port: 0,
    secret: channel.secret,
    ...channel.clientOptions,
    ...options,
  });
  try {
    return await use(cluster);
  } finally {
    await withTimeout(cluster.close(), CLOSE_TIMEOUT_MS, 'cluster.close() did not finish');
  }
}

/**
 * The three workloads against one node on `channel`: its `secret` ('' for none), and the node's
 * flags and the client's options for TLS (none for plain frames and the secret's TLS).
 */
async function measure(channel, file) {
  const node = await startNode({
    host: HOST,
    cpus: NODE_CPUS,
    secret: channel.secret || undefined,
    args: ['--max-file-size', '0', ...channel.nodeArgs],
  });
  try {
    const tiny = await withCluster(
      node,
      channel,
      (n) => n * 2,
      {},
      async (cluster) => {
        const first = cluster.submit(1);
        await withTimeout(first.wait(), JOB_TIMEOUT_MS, 'the first tiny job did not finish');
        return rounds(() =>
          batchRound(cluster, {
            count: TINY_JOBS,
            argumentOf: (i) => i,
            timeoutSeconds: ROUND_TIMEOUT_S,
            check: (job, i) => expectFinished(job, i * 2, `tiny job ${i}`),
          }),
        );
      },
    );
    const args = Array.from({ length: ARG_JOBS }, () => new Uint8Array(MiB).fill(0x5a));
    const big = await withCluster(
      node,
      channel,
      (data) => data.length,
      {},
      async (cluster) => {
        const first = cluster.submit(new Uint8Array(1));
        await withTimeout(first.wait(), JOB_TIMEOUT_MS, 'the first argument job did not finish');
        return rounds(() =>
          batchRound(cluster, {
            count: ARG_JOBS,
            argumentOf: (i) => args[i],
            timeoutSeconds: ROUND_TIMEOUT_S,
            check: (job, i) => expectFinished(job, MiB, `argument job ${i}`),
          }),
        );
      },
    );
    const files = await rounds(() =>
      withCluster(node, channel, statFile, { depends: [file.file], cleanup: true }, async (cluster) => {
        const start = now();
        const job = cluster.submit();
        await withTimeout(job.wait(), JOB_TIMEOUT_MS, 'the job with the depends file did not finish');
        const elapsed = now() - start;
        expectFinished(job, FILE_BYTES, 'the job with the depends file');
        return elapsed;
      }),
    );
    return { tiny, big, files };
  } finally {
    await node.stop();
  }
}

const ms = (samples) => samples.map((value) => value.toFixed(0)).join(' / ');

export default {
  id: 'dispy-channel',
  title: `dispy's protected channel and TLS against plain frames, same run, one dispynode (${NODE_CPUS} CPUs) on ${HOST}`,
  async run() {
    const file = await createBigFile({ bytes: FILE_BYTES, name: FILE_NAME });
    const { makeTestCertificates } = await tsImport('../../testing/certificates.ts', import.meta.url);
    const certs = makeTestCertificates([HOST]);
    try {
      const plain = await measure({ secret: '', nodeArgs: [], clientOptions: {} }, file);
      const secret = await measure({ secret: SECRET, nodeArgs: [], clientOptions: {} }, file);
      const tls = await measure(
        { secret: SECRET, nodeArgs: ['--certfile', certs.nodeCert, '--keyfile', certs.nodeKey], clientOptions: { cafile: certs.ca } },
        file,
      );
      // A ratio of rates is the inverse ratio of times: secret's rate ÷ plain rate = plain ms ÷ secret's ms.
      const ratio = (name, other, key, label, what) => ({
        key: `${name === 'TLS with certificates' ? 'tls' : 'channel'}.${key}.ratio`,
        label: `${name} ÷ plain: ${label}`,
        value: plain[key].warm / other[key].warm,
        unit: '×',
        digits: 3,
        note:
          `warm median; cold first round ${(plain[key].cold / other[key].cold).toFixed(3)}×; ${what}; ` +
          `ms plain ${ms(plain[key].all)}, ${name} ${ms(other[key].all)} (cold first)`,
      });
      return [secret, tls].flatMap((other, i) => {
        const name = i === 0 ? "secret's TLS (PSK)" : 'TLS with certificates';
        return [
          ratio(name, other, 'tiny', 'small-job throughput', `${TINY_JOBS} jobs at once`),
          ratio(name, other, 'big', '1 MiB arguments', `${ARG_JOBS} jobs at once`),
          ratio(name, other, 'files', 'a 64 MiB depends file (fresh cluster to first result)', 'setup included'),
        ];
      });
    } finally {
      certs.remove();
      await file.remove();
    }
  },
};
