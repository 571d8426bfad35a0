import { now } from './timing.mjs';

/**
 * One timed round: submits `count` jobs in one synchronous loop (`argumentOf(i)` for job i),
 * times until `cluster.wait()` resolves, then checks each job with `check(job, i)`.
 * @returns {Promise<number>} the elapsed milliseconds
 */
export async function batchRound(cluster, { count, argumentOf, timeoutSeconds, check }) {
  const jobs = new Array(count);
  const start = now();
  for (let i = 0; i < count; i++) jobs[i] = cluster.submit(argumentOf(i));
  const allDone = await cluster.wait(timeoutSeconds);
  const elapsedMs = now() - start;
  if (!allDone) {
    const finished = jobs.filter((job) => job.isDone).length;
    throw new Error(`cluster.wait() did not resolve within ${timeoutSeconds} s: ${finished}/${count} jobs done`);
  }
  jobs.forEach(check);
  return elapsedMs;
}
