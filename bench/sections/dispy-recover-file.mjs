// dispy's recover file: what writing it (the default) costs, as the ratio of throughput with it to
// throughput without it (`recoverFile: false`), measured in the same run on
// loopback. Two clusters, one of each, each on a dispynode of its own (2 CPUs; a node serves
// one client at a time), take turns: a cold first round each (the first after connecting), then
// warm rounds in alternation, so drift in the machine's load hits both.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DispyJob, JobCluster } from '../../packages/client/dist/index.js';
import { startNode } from '../../testing/dispynode-process.mjs';
import { batchRound } from '../lib/batch-round.mjs';
import { median, perSecond } from '../lib/stats.mjs';
import { withTimeout } from '../lib/timing.mjs';
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

const round = (cluster) => batchRound(cluster, { count: THROUGHPUT_JOBS, argumentOf: (n) => n, timeoutSeconds: ROUND_TIMEOUT_S, check });

export default {
  id: 'dispy-recover',
  title: `dispy: the recover file's cost, ${THROUGHPUT_JOBS.toLocaleString('en-US')} tiny jobs with and without it`,
  async run() {
    const nodes = {};
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dispy-bench-recover-'));
    const recoverFile = path.join(dir, '_dispy_bench');
    const clusters = {};
    try {
      for (const [name, option] of [
        ['off', false],
        ['on', recoverFile],
      ]) {
        const node = (nodes[name] = await startNode({ host: '127.0.0.1', cpus: NODE_CPUS }));
        clusters[name] = new JobCluster((n) => n * 2, {
          nodes: [node.host],
          nodePort: node.port,
          ipAddr: node.host,
          port: 0,
          recoverFile: option,
        });
        const warmup = clusters[name].submit(-1);
        await withTimeout(warmup.wait(), DISCOVERY_TIMEOUT_MS, `the warm-up job (recover file ${name}) did not finish`);
        check(warmup, -1);
      }
      const cold = { off: await round(clusters.off), on: await round(clusters.on) };
      const warm = { off: [], on: [] };
      for (let i = 0; i < WARM_ROUNDS; i++) {
        // Alternate which goes first, so neither always follows the other's garbage.
        const order = i % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
        for (const name of order) warm[name].push(await round(clusters[name]));
      }
      const fileBytes = fs.statSync(recoverFile).size;
      const rate = (ms) => perSecond(THROUGHPUT_JOBS, ms);
      const list = (rounds) => rounds.map((ms) => ms.toFixed(0)).join(' / ');
      return [
        {
          key: 'dispy.recover.off.throughput',
          label: 'throughput without a recover file (recoverFile: false)',
          value: rate(median(warm.off)),
          unit: 'jobs/s',
          digits: 0,
          note: `warm median of ${WARM_ROUNDS} (${list(warm.off)} ms); cold first round ${cold.off.toFixed(0)} ms`,
        },
        {
          key: 'dispy.recover.on.throughput',
          label: 'throughput with the recover file (the default)',
          value: rate(median(warm.on)),
          unit: 'jobs/s',
          digits: 0,
          note: `warm median of ${WARM_ROUNDS} (${list(warm.on)} ms); cold first round ${cold.on.toFixed(0)} ms; file ${(fileBytes / 1024 / 1024).toFixed(1)} MiB`,
        },
        {
          key: 'dispy.recover.ratio',
          label: 'recover file on ÷ off, warm median',
          value: median(warm.off) / median(warm.on),
          unit: '×',
          digits: 3,
          note: `cold first round: ${(cold.off / cold.on).toFixed(3)}×`,
        },
        {
          key: 'dispy.recover.cold.ratio',
          label: 'recover file on ÷ off, cold first round',
          value: cold.off / cold.on,
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
        await Promise.all(Object.values(nodes).map((node) => node.stop()));
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  },
};
