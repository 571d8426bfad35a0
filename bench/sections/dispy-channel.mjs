// dispy's protected channel: what sealing every frame (a shared secret) costs, as ratios to plain
// frames (no secret) measured in the same run, on one real dispynode (2 CPUs) on loopback. Three
// workloads, each run without and then with a secret on a node of its own:
//  - throughput: 5,000 tiny `n => n * 2` jobs at once;
//  - 1 MiB arguments: 100 jobs at once, each with its own 1 MiB Uint8Array;
//  - a file: a fresh cluster with one 64 MiB `depends` file, until its first job resolves.
// Each reports its cold first round (the first after connecting: code paths not yet compiled)
// beside the median of the warm rounds that follow.
import { DispyJob, JobCluster } from '../../packages/client/dist/index.js';
import { MiB, createBigFile } from '../lib/big-file.mjs';
import { startNode } from '../../testing/dispynode-process.mjs';
import { batchRound } from '../lib/batch-round.mjs';
import { median } from '../lib/stats.mjs';
import { now, withTimeout } from '../lib/timing.mjs';

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

async function withCluster(node, secret, computation, options, use) {
  const cluster = new JobCluster(computation, { nodes: [node.host], nodePort: node.port, ipAddr: node.host, port: 0, secret, ...options });
  try {
    return await use(cluster);
  } finally {
    await withTimeout(cluster.close(), CLOSE_TIMEOUT_MS, 'cluster.close() did not finish');
  }
}

/** The three workloads against one node started with `secret` ('' for none). */
async function measure(secret, file) {
  const node = await startNode({ host: '127.0.0.1', cpus: NODE_CPUS, secret: secret || undefined, args: ['--max-file-size', '0'] });
  try {
    const tiny = await withCluster(
      node,
      secret,
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
      secret,
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
      withCluster(node, secret, statFile, { depends: [file.file], cleanup: true }, async (cluster) => {
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
  title: `dispy's protected channel: a secret (sealed frames) against none, same run, one dispynode (${NODE_CPUS} CPUs) on 127.0.0.1`,
  async run() {
    const file = await createBigFile({ bytes: FILE_BYTES, name: FILE_NAME });
    try {
      const plain = await measure('', file);
      const sealed = await measure(SECRET, file);
      // A ratio of rates is the inverse ratio of times: sealed rate ÷ plain rate = plain ms ÷ sealed ms.
      const ratio = (key, label, what) => ({
        key: `channel.${key}.ratio`,
        label,
        value: plain[key].warm / sealed[key].warm,
        unit: '×',
        digits: 3,
        note:
          `warm median; cold first round ${(plain[key].cold / sealed[key].cold).toFixed(3)}×; ${what}; ` +
          `ms plain ${ms(plain[key].all)}, sealed ${ms(sealed[key].all)} (cold first)`,
      });
      return [
        ratio('tiny', 'sealed ÷ plain: small-job throughput', `${TINY_JOBS} jobs at once`),
        ratio('big', 'sealed ÷ plain: 1 MiB arguments', `${ARG_JOBS} jobs at once`),
        ratio('files', 'sealed ÷ plain: a 64 MiB depends file (fresh cluster to first result)', 'setup included'),
      ];
    } finally {
      await file.remove();
    }
  },
};
