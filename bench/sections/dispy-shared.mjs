// Trivial-job throughput through dispyscheduler (a SharedJobCluster) beside the same workload with
// a JobCluster, same run, one real dispynode (2 CPUs) on loopback: 5,000 `n => n * 2` jobs at once,
// a cold first round and the median of the warm rounds that follow. Through the scheduler, each
// job crosses two connections (client to scheduler, scheduler to node) and the scheduler's process.
import { DispyJob, JobCluster, SharedJobCluster } from '../../packages/client/dist/index.js';
import { startNode } from '../../testing/dispynode-process.mjs';
import { startScheduler } from '../../testing/dispyscheduler-process.mjs';
import { batchRound } from '../lib/batch-round.mjs';
import { median } from '../lib/stats.mjs';
import { withTimeout } from '../lib/timing.mjs';

const HOST = '127.0.0.1';
const NODE_CPUS = 2;
const NODE_SECRET = 'a bench node secret that is long enough';
const CLUSTER_SECRET = 'a bench cluster secret that is long enough';
const JOBS = 5_000;
const WARM_ROUNDS = 3;
const ROUND_TIMEOUT_S = 120;
const CLOSE_TIMEOUT_MS = 15_000;

async function throughput(cluster) {
  await withTimeout(cluster.submit(1).wait(), 60_000, 'the first job did not finish');
  const round = () =>
    batchRound(cluster, {
      count: JOBS,
      argumentOf: (i) => i,
      timeoutSeconds: ROUND_TIMEOUT_S,
      check: (job, i) => {
        if (job.status !== DispyJob.Finished || job.result !== i * 2) throw new Error(`job ${i} ended ${DispyJob.statusName(job.status)}`);
      },
    });
  const cold = await round();
  const warm = [];
  for (let i = 0; i < WARM_ROUNDS; i++) warm.push(await round());
  return { cold, warm: median(warm), all: [cold, ...warm] };
}

const ms = (all) => all.map((value) => value.toFixed(0)).join(', ');

export default {
  id: 'dispy-shared',
  title: `dispyscheduler (SharedJobCluster) against JobCluster, same run, one dispynode (${NODE_CPUS} CPUs) on ${HOST}`,
  async run() {
    const node = await startNode({ host: HOST, cpus: NODE_CPUS, secret: NODE_SECRET });
    try {
      const direct = new JobCluster((n) => n * 2, {
        nodes: [HOST],
        nodePort: node.port,
        ipAddr: HOST,
        port: 0,
        secret: NODE_SECRET,
        recoverFile: false,
      });
      let alone;
      try {
        alone = await throughput(direct);
      } finally {
        await withTimeout(direct.close(), CLOSE_TIMEOUT_MS, 'JobCluster.close() did not finish');
      }
      const scheduler = await startScheduler({
        host: HOST,
        nodes: [HOST],
        nodePort: node.port,
        nodeSecret: NODE_SECRET,
        clusterSecret: CLUSTER_SECRET,
        args: ['--ping-interval', '1'],
      });
      let shared;
      try {
        const cluster = new SharedJobCluster((n) => n * 2, { schedulerNode: HOST, schedulerPort: scheduler.port, secret: CLUSTER_SECRET });
        try {
          shared = await throughput(cluster);
        } finally {
          await withTimeout(cluster.close(), CLOSE_TIMEOUT_MS, 'SharedJobCluster.close() did not finish');
        }
      } finally {
        await scheduler.stop();
      }
      const rate = (result) => (JOBS / result.warm) * 1000;
      return [
        {
          key: 'jobcluster.throughput',
          label: 'JobCluster: tiny jobs',
          value: rate(alone),
          unit: 'jobs/s',
          digits: 0,
          note: `${JOBS} at once, warm median; ms ${ms(alone.all)} (cold first)`,
        },
        {
          key: 'shared.throughput',
          label: 'SharedJobCluster through dispyscheduler: tiny jobs',
          value: rate(shared),
          unit: 'jobs/s',
          digits: 0,
          note: `${JOBS} at once, warm median; ms ${ms(shared.all)} (cold first)`,
        },
      ];
    } finally {
      await node.stop();
    }
  },
};
