// dispy file transfer: a 100 MiB `depends` file of a JobCluster, sent to one real dispynode
// (2 CPUs, --max-file-size 0) on loopback. Each measurement is a fresh cluster, timed from its
// creation until its first job (which stats the file in its computation directory) resolves. The
// same with no depends file, measured in the same run, is the setup cost (discovery,
// authentication, shipping the computation, starting its workers); the transfer rate is the
// file's size over the difference.
import { DispyJob, JobCluster } from '../../packages/client/dist/index.js';
import { BIG_FILE_NAME, MiB, createBigFile } from '../lib/big-file.mjs';
import { startNode } from '../../testing/dispynode-process.mjs';
import { nodePeakRssNote } from '../lib/memory.mjs';
import { median } from '../lib/stats.mjs';
import { now, withTimeout } from '../lib/timing.mjs';

const NODE_CPUS = 2;
const ROUNDS = 5;
/** Bounds on every wait, so a hang in dispy becomes an error in the report, not a stuck run. */
const JOB_TIMEOUT_MS = 30_000;
const CLOSE_TIMEOUT_MS = 15_000;

// The job: the size of the depends file as the node sees it, or -1 when there is none (the
// baseline). The name is a literal: a computation may not refer to the bench's variables.
// prettier-ignore
const statFile = () => { const fs = require('node:fs'); return fs.existsSync('dispy-bench-100MiB.bin') ? fs.statSync('dispy-bench-100MiB.bin').size : -1; };
if (!statFile.toString().includes(BIG_FILE_NAME)) throw new Error(`the job must stat ${BIG_FILE_NAME}`);

/**
 * One measurement: creates a cluster (with `file` as its only depends, or none), submits one
 * job, and returns the ms until it resolved; the cluster is closed (untimed) before returning,
 * since a node serves one client at a time.
 */
async function timeFirstJob(node, file, expected) {
  let cluster;
  try {
    const start = now();
    cluster = new JobCluster(statFile, {
      nodes: [node.host],
      nodePort: node.port,
      ipAddr: node.host,
      port: 0,
      depends: file ? [file] : [],
      cleanup: true,
    });
    const job = cluster.submit();
    await withTimeout(job.wait(), JOB_TIMEOUT_MS, `the first job ${file ? 'with' : 'without'} the depends file did not finish`);
    const elapsed = now() - start;
    if (job.status !== DispyJob.Finished || job.result !== expected) {
      throw new Error(
        `the job ${file ? 'with' : 'without'} the depends file ended ${DispyJob.statusName(job.status)} with ` +
          `${JSON.stringify(job.result)}, not ${expected}${job.exception ? `: ${job.exception}` : ''}`,
      );
    }
    return elapsed;
  } finally {
    if (cluster) await withTimeout(cluster.close(), CLOSE_TIMEOUT_MS, 'cluster.close() did not finish');
  }
}

const list = (samples) => samples.map((ms) => ms.toFixed(0)).join(' / ');

export default {
  id: 'dispy-file',
  title: `dispy file transfer: a 100 MiB depends file to one dispynode (${NODE_CPUS} CPUs) on 127.0.0.1`,
  async run() {
    const big = await createBigFile();
    let node;
    try {
      // The node's default limit (10 MB) would refuse the file.
      node = await startNode({ host: '127.0.0.1', cpus: NODE_CPUS, args: ['--max-file-size', '0'] });
      // Not counted, like the TCP baseline's first transfer: the first clusters of the run also
      // pay for loading and compiling code, with and without a file.
      await timeFirstJob(node, undefined, -1);
      await timeFirstJob(node, big.file, big.bytes);
      const baseline = [];
      const withFile = [];
      // Interleaved, so a slow phase of the machine does not fall on one side only.
      for (let round = 0; round < ROUNDS; round++) {
        baseline.push(await timeFirstJob(node, undefined, -1));
        withFile.push(await timeFirstJob(node, big.file, big.bytes));
      }
      const setupMs = median(baseline);
      const transferMs = withFile.map((ms) => ms - setupMs);
      // A transfer that took no longer than the setup has no meaningful rate.
      const rates = transferMs.map((ms) => (ms > 0 ? big.bytes / MiB / (ms / 1000) : Number.NaN));
      const rate = median(rates.map((r) => (Number.isNaN(r) ? Infinity : r)));
      const memory = await nodePeakRssNote(node.child.pid);
      return [
        {
          key: 'dispy.file.rate',
          label: 'dispy file transfer (100 MiB depends file)',
          value: Number.isFinite(rate) ? rate : Number.NaN,
          unit: 'MiB/s',
          digits: 0,
          note:
            `median of ${ROUNDS} after 1 warm-up: cluster to first result ${list(withFile)} ms, ` +
            `minus setup ${setupMs.toFixed(0)} ms` +
            (memory ? `; ${memory}` : ''),
        },
        {
          key: 'dispy.file.setup',
          label: 'dispy cluster setup to first result (no files)',
          value: setupMs,
          unit: 'ms',
          digits: 0,
          note: `median of ${ROUNDS} (${list(baseline)} ms): the baseline subtracted above`,
        },
      ];
    } finally {
      try {
        await node?.stop();
      } finally {
        await big.remove();
      }
    }
  },
};
