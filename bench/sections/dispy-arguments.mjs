// dispy 1 MiB arguments: how fast job arguments move to one real dispynode (2 CPUs) on loopback.
// Each round submits 200 jobs at once, each with its own 1 MiB Uint8Array argument, and is timed
// from the first submit until cluster.wait() resolves; the rate is the arguments' bytes over it.
// One whole round runs first, uncounted, as the TCP baseline's first transfer is: code paths are
// compiled and the processes' heaps grown to the working size.
import { DispyJob, JobCluster } from '../../packages/client/dist/index.js';
import { MiB } from '../lib/big-file.mjs';
import { startNode } from '../../testing/dispynode-process.mjs';
import { batchRound } from '../lib/batch-round.mjs';
import { nodePeakRssNote } from '../lib/memory.mjs';
import { median } from '../lib/stats.mjs';
import { withTimeout } from '../lib/timing.mjs';

const NODE_CPUS = 2;
const JOBS = 200;
const ROUNDS = 5;
const ARGUMENT_BYTES = MiB;
/** Bounds on every wait, so a hang in dispy becomes an error in the report, not a stuck run. */
const WARMUP_TIMEOUT_MS = 20_000;
const ROUND_TIMEOUT_S = 60;
const CLOSE_TIMEOUT_MS = 15_000;

/** Throws unless `job` Finished with the length of its 1 MiB argument; checked outside the timed spans. */
function check(job, index) {
  if (job.status !== DispyJob.Finished || job.result !== ARGUMENT_BYTES) {
    throw new Error(
      `job ${index} ended ${DispyJob.statusName(job.status)} with result ${JSON.stringify(job.result)}, not ${ARGUMENT_BYTES}` +
        (job.exception ? `: ${job.exception}` : ''),
    );
  }
}

/** `count` distinct 1 MiB arguments (made before timing; their first bytes tell them apart). */
function makeArguments(count) {
  return Array.from({ length: count }, (_, i) => {
    const data = new Uint8Array(ARGUMENT_BYTES).fill(0x5a);
    new DataView(data.buffer).setUint32(0, i);
    return data;
  });
}

export default {
  id: 'dispy-args',
  title: `dispy 1 MiB arguments: ${JOBS} jobs at once to one dispynode (${NODE_CPUS} CPUs) on 127.0.0.1`,
  async run() {
    const node = await startNode({ host: '127.0.0.1', cpus: NODE_CPUS });
    let cluster;
    try {
      cluster = new JobCluster((data) => data.length, {
        nodes: [node.host],
        nodePort: node.port,
        ipAddr: node.host,
        port: 0,
      });
      const args = makeArguments(JOBS);
      // Discovery, authentication and shipping the computation happen here, before any timing.
      const warmup = cluster.submit(args[0]);
      await withTimeout(warmup.wait(), WARMUP_TIMEOUT_MS, 'the warm-up job did not finish');
      check(warmup, -1);

      const batch = { count: JOBS, argumentOf: (i) => args[i], timeoutSeconds: ROUND_TIMEOUT_S, check };
      await batchRound(cluster, batch); // the uncounted warm-up round
      const rounds = [];
      for (let round = 0; round < ROUNDS; round++) {
        rounds.push(await batchRound(cluster, batch));
      }
      const megabytes = (JOBS * ARGUMENT_BYTES) / MiB;
      const rate = megabytes / (median(rounds) / 1000);
      const memory = await nodePeakRssNote(node.child.pid);
      return [
        {
          key: 'dispy.args.rate',
          label: `dispy 1 MiB arguments (${JOBS} jobs at once)`,
          value: rate,
          unit: 'MiB/s',
          digits: 0,
          note:
            `${megabytes} MiB over the median of ${ROUNDS} rounds (${rounds.map((ms) => ms.toFixed(0)).join(' / ')} ms) after 1 warm-up` +
            (memory ? `; ${memory}` : ''),
        },
      ];
    } finally {
      try {
        if (cluster) await withTimeout(cluster.close(), CLOSE_TIMEOUT_MS, 'cluster.close() did not finish');
      } finally {
        await node.stop();
      }
    }
  },
};
