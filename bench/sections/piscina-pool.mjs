// Baseline A: the same trivial tasks on a local worker-thread pool (piscina, 2 threads). It has
// no network, no serialization beyond structured clone, and no separate process: the best a
// 2-CPU pool can do on this machine, which dispy's throughput is compared against.
import Piscina from 'piscina';
import { roundsSummary } from '../lib/stats.mjs';
import { now, withTimeout } from '../lib/timing.mjs';
import { THROUGHPUT_JOBS, THROUGHPUT_ROUNDS } from '../lib/workload.mjs';

const THREADS = 2;
/** One per thread, to match dispy's single warm-up job as closely as a pool allows. */
const WARMUP_TASKS = 2;
const TIMEOUT_MS = 60_000;

export default {
  id: 'piscina',
  title: `baseline A: piscina ${Piscina.version} with ${THREADS} worker threads`,
  async run() {
    const pool = new Piscina({
      filename: new URL('../piscina-task.mjs', import.meta.url).href,
      minThreads: THREADS,
      maxThreads: THREADS,
    });
    try {
      // Like dispy's warm-up job: both threads are up and the task module is loaded before
      // timing, but no more warm-up than dispy gets, so neither side has a JIT head start.
      await withTimeout(
        Promise.all(Array.from({ length: WARMUP_TASKS }, (_, n) => pool.run(n))),
        TIMEOUT_MS,
        'piscina warm-up tasks did not finish',
      );

      // The same rounds as dispy's throughput, each timed from the first run() to the last result.
      const rounds = [];
      for (let round = 0; round < THROUGHPUT_ROUNDS; round++) {
        const tasks = new Array(THROUGHPUT_JOBS);
        const start = now();
        for (let n = 0; n < THROUGHPUT_JOBS; n++) tasks[n] = pool.run(n);
        const results = await withTimeout(Promise.all(tasks), TIMEOUT_MS, 'piscina tasks did not finish');
        rounds.push(now() - start);
        results.forEach((result, n) => {
          if (result !== n * 2) throw new Error(`piscina task ${n} returned ${JSON.stringify(result)}`);
        });
      }
      const tput = roundsSummary(rounds, THROUGHPUT_JOBS);
      return [
        {
          key: 'piscina.throughput',
          label: `piscina throughput (${THROUGHPUT_JOBS.toLocaleString('en-US')} tasks at once)`,
          value: tput.perSecond,
          unit: 'tasks/s',
          digits: 0,
          note: `median of ${tput.text}; minThreads = maxThreads = ${THREADS}`,
        },
      ];
    } finally {
      await pool.destroy();
    }
  },
};
