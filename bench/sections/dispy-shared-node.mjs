// dispy: two JobClusters sharing one dispynode at once, beside one cluster alone on the same node,
// in the same run. A node serves several computations at once, sharing its CPUs round-robin among
// those with jobs waiting: two clusters together should run about as many tiny jobs per second as
// one alone. Each round: the cluster alone runs THROUGHPUT_JOBS jobs; then the two together run
// THROUGHPUT_JOBS each, timed from the first submit until both are done. A cold first round each
// (the first after connecting), then warm rounds in alternation, so drift in the machine's load
// hits both.
import { DispyJob, JobCluster } from '../../packages/client/dist/index.js';
import { startNode } from '../../testing/dispynode-process.mjs';
import { median, perSecond } from '../lib/stats.mjs';
import { now, withTimeout } from '../lib/timing.mjs';
import { THROUGHPUT_JOBS } from '../lib/workload.mjs';

const NODE_CPUS = 2;
const WARM_ROUNDS = 5;
const ROUND_TIMEOUT_S = 60;
const DISCOVERY_TIMEOUT_MS = 20_000;
const CLOSE_TIMEOUT_MS = 15_000;

function check(job, n) {
  if (job.status !== DispyJob.Finished || job.result !== n * 2) {
    throw new Error(`job for n=${n} ended ${DispyJob.statusName(job.status)} with ${JSON.stringify(job.result)}`);
  }
}

/** One timed round: every cluster gets THROUGHPUT_JOBS jobs at once; ms until all are done. */
async function round(clusters) {
  const jobs = clusters.map(() => new Array(THROUGHPUT_JOBS));
  const start = now();
  for (let i = 0; i < THROUGHPUT_JOBS; i++) clusters.forEach((cluster, c) => (jobs[c][i] = cluster.submit(i)));
  const done = await Promise.all(clusters.map((cluster) => cluster.wait(ROUND_TIMEOUT_S)));
  const elapsed = now() - start;
  if (!done.every(Boolean)) throw new Error(`a round did not finish within ${ROUND_TIMEOUT_S} s`);
  for (const list of jobs) list.forEach(check);
  return elapsed;
}

export default {
  id: 'dispy-shared-node',
  title: `dispy: two JobClusters sharing one dispynode (${NODE_CPUS} CPUs) at once, beside one cluster alone`,
  async run() {
    const node = await startNode({ host: '127.0.0.1', cpus: NODE_CPUS });
    const clusters = {};
    try {
      for (const name of ['alone', 'first', 'second']) {
        clusters[name] = new JobCluster((n) => n * 2, { nodes: [node.host], nodePort: node.port, ipAddr: node.host, port: 0 });
        const warmup = clusters[name].submit(-1);
        await withTimeout(warmup.wait(), DISCOVERY_TIMEOUT_MS, `the warm-up job (${name}) did not finish`);
        check(warmup, -1);
      }
      const pair = [clusters.first, clusters.second];
      const cold = { alone: await round([clusters.alone]), pair: await round(pair) };
      const warm = { alone: [], pair: [] };
      for (let i = 0; i < WARM_ROUNDS; i++) {
        const order = i % 2 === 0 ? ['alone', 'pair'] : ['pair', 'alone'];
        for (const name of order) warm[name].push(await round(name === 'alone' ? [clusters.alone] : pair));
      }
      const list = (rounds) => rounds.map((ms) => ms.toFixed(0)).join(' / ');
      const aloneRate = (ms) => perSecond(THROUGHPUT_JOBS, ms);
      const pairRate = (ms) => perSecond(2 * THROUGHPUT_JOBS, ms);
      return [
        {
          key: 'dispy.shared.alone.throughput',
          label: 'one cluster alone on the node',
          value: aloneRate(median(warm.alone)),
          unit: 'jobs/s',
          digits: 0,
          note: `warm median of ${WARM_ROUNDS} (${list(warm.alone)} ms); cold first round ${cold.alone.toFixed(0)} ms`,
        },
        {
          key: 'dispy.shared.pair.throughput',
          label: 'two clusters sharing the node, together',
          value: pairRate(median(warm.pair)),
          unit: 'jobs/s',
          digits: 0,
          note: `${THROUGHPUT_JOBS.toLocaleString('en-US')} jobs each; warm median of ${WARM_ROUNDS} (${list(warm.pair)} ms); cold first round ${cold.pair.toFixed(0)} ms`,
        },
        {
          key: 'dispy.shared.ratio',
          label: 'two sharing, together ÷ one alone, warm median',
          value: pairRate(median(warm.pair)) / aloneRate(median(warm.alone)),
          unit: '×',
          digits: 3,
          note: `cold first round: ${(pairRate(cold.pair) / aloneRate(cold.alone)).toFixed(3)}×`,
        },
        {
          key: 'dispy.shared.cold.ratio',
          label: 'two sharing, together ÷ one alone, cold first round',
          value: pairRate(cold.pair) / aloneRate(cold.alone),
          unit: '×',
          digits: 3,
        },
      ];
    } finally {
      try {
        await Promise.all(
          Object.values(clusters).map((cluster) => withTimeout(cluster.close(), CLOSE_TIMEOUT_MS, 'cluster.close() did not finish')),
        );
      } finally {
        await node.stop();
      }
    }
  },
};
