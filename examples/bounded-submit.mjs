// Bounded submission (dispy's bounded_submit example): keep between LOWER and UPPER jobs in
// flight, submitting more from the callback as jobs finish, so memory stays bounded however many
// jobs there are in all.
//   node examples/bounded-submit.mjs [nodeHost] [nodePort] [jobs]
import { JobCluster, DispyJob } from '@dispy/client';

const [host = '127.0.0.1', port = '51348', total = '200'] = process.argv.slice(2);
const TOTAL = Number(total);
const LOWER = 4;
const UPPER = 12;

/** Runs on the node: a short wait standing in for real work. */
async function compute(n) {
  await new Promise((resolve) => setTimeout(resolve, 5));
  return n * n;
}

let submitted = 0;
let inFlight = 0;
let mostInFlight = 0;
let finished = 0;
let sum = 0;
let allDone;
const done = new Promise((resolve) => (allDone = resolve));

function submitMore() {
  while (inFlight < UPPER && submitted < TOTAL) {
    cluster.submit(submitted++);
    inFlight++;
    mostInFlight = Math.max(mostInFlight, inFlight);
  }
}

/** Called for every job's final status (and provisional results, which we skip). */
function jobCallback(job) {
  if (job.status === DispyJob.ProvisionalResult) return;
  inFlight--;
  finished++;
  if (job.status === DispyJob.Finished) sum += job.result;
  if (finished === TOTAL) allDone();
  else if (inFlight < LOWER) submitMore();
}

const cluster = new JobCluster(compute, { nodes: [host], nodePort: Number(port), port: 0, callback: jobCallback });
submitMore();
await done;
await cluster.close();
console.log(JSON.stringify({ finished, sum, mostInFlight }));
