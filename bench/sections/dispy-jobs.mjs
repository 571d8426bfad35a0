// dispy: throughput of many jobs submitted at once, and the latency of one job at a time,
// against one real dispynode process (2 CPUs) on loopback.
import { DispyJob, JobCluster } from '../../packages/client/dist/index.js';
import { startNode } from '../../testing/dispynode-process.mjs';
import { batchRound } from '../lib/batch-round.mjs';
import { roundsSummary, summarize } from '../lib/stats.mjs';
import { now, withTimeout } from '../lib/timing.mjs';
import { THROUGHPUT_JOBS, THROUGHPUT_ROUNDS } from '../lib/workload.mjs';

const LATENCY_WARMUP = 100;
const LATENCY_JOBS = 1_000;
const NODE_CPUS = 2;

// Bounds on every wait, so a hang in dispy becomes an error in the report, not a stuck run.
const DISCOVERY_TIMEOUT_MS = 20_000;
const THROUGHPUT_TIMEOUT_S = 60;
const JOB_TIMEOUT_MS = 10_000;
const CLOSE_TIMEOUT_MS = 15_000;

/** Throws unless `job` Finished with `n * 2`; checked outside the timed spans. */
function check(job, n) {
  if (job.status !== DispyJob.Finished || job.result !== n * 2) {
    throw new Error(
      `job for n=${n} ended ${DispyJob.statusName(job.status)} with result ${JSON.stringify(job.result)}` +
        (job.exception ? `: ${job.exception}` : ''),
    );
  }
}

/** One round: THROUGHPUT_JOBS jobs submitted in one synchronous loop, timed until all are done. */
function throughputRound(cluster) {
  return batchRound(cluster, { count: THROUGHPUT_JOBS, argumentOf: (n) => n, timeoutSeconds: THROUGHPUT_TIMEOUT_S, check });
}

/** One job at a time: submit, await its result, repeat; returns per-job times in ms. */
async function sequentialLatency(cluster) {
  const samples = [];
  for (let i = 0; i < LATENCY_WARMUP + LATENCY_JOBS; i++) {
    const start = now();
    const job = cluster.submit(i);
    await withTimeout(job.wait(), JOB_TIMEOUT_MS, `sequential job ${i} did not finish`);
    const elapsed = now() - start;
    check(job, i);
    if (i >= LATENCY_WARMUP) samples.push(elapsed);
  }
  return summarize(samples);
}

export default {
  id: 'dispy',
  title: `dispy: one dispynode process (${NODE_CPUS} CPUs) on 127.0.0.1`,
  async run() {
    const node = await startNode({ host: '127.0.0.1', cpus: NODE_CPUS });
    let cluster;
    try {
      cluster = new JobCluster((n) => n * 2, {
        nodes: [node.host],
        nodePort: node.port,
        ipAddr: node.host,
        port: 0,
      });
      // Discovery, authentication and shipping the computation happen here, before any timing.
      const warmup = cluster.submit(-1);
      await withTimeout(
        warmup.wait(),
        DISCOVERY_TIMEOUT_MS,
        `the warm-up job did not finish (is dispynode on ${node.host}:${node.port} found?)`,
      );
      check(warmup, -1);

      const rounds = [];
      for (let round = 0; round < THROUGHPUT_ROUNDS; round++) rounds.push(await throughputRound(cluster));
      const tput = roundsSummary(rounds, THROUGHPUT_JOBS);
      const latency = await sequentialLatency(cluster);
      return [
        {
          key: 'dispy.throughput',
          label: `dispy throughput (${THROUGHPUT_JOBS.toLocaleString('en-US')} jobs at once)`,
          value: tput.perSecond,
          unit: 'jobs/s',
          digits: 0,
          note: `median of ${tput.text} from first submit to cluster.wait()`,
        },
        {
          key: 'dispy.latency.median',
          label: 'dispy sequential latency, median',
          value: latency.median,
          unit: 'ms',
          digits: 3,
          note: `${latency.count} jobs after ${LATENCY_WARMUP} warm-up; min ${latency.min.toFixed(3)} ms`,
        },
        {
          key: 'dispy.latency.p99',
          label: 'dispy sequential latency, p99',
          value: latency.p99,
          unit: 'ms',
          digits: 3,
          note: `max ${latency.max.toFixed(3)} ms`,
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
