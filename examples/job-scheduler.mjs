// A scheduler of your own (dispy's job_scheduler example): clusterStatus tells which nodes are
// up and when each job ends; the program places every job itself with submitNode, one per free
// CPU, instead of letting the cluster balance the load.
//   node examples/job-scheduler.mjs [nodeHost] [nodePort] [jobs]
import { JobCluster, DispyJob, DispyNode } from '@dispy/client';

const [host = '127.0.0.1', port = '51348', total = '50'] = process.argv.slice(2);
const TOTAL = Number(total);

function compute(n) {
  return { n, pid: process.pid };
}

/** Free CPUs per node, as this program counts them. */
const freeCpus = new Map();
const runOn = new Map();
let next = 0;
let finished = 0;
let allDone;
const done = new Promise((resolve) => (allDone = resolve));

function schedule() {
  for (const [node, free] of freeCpus) {
    for (let i = 0; i < free && next < TOTAL; i++) {
      const job = cluster.submitNode(node, next++);
      job.id = node.ipAddr;
      freeCpus.set(node, freeCpus.get(node) - 1);
    }
  }
}

function clusterStatus(status, node, job) {
  if (job === undefined) {
    if (status === DispyNode.Initialized) freeCpus.set(node, node.cpus);
    if (status === DispyNode.Closed) freeCpus.delete(node);
  } else if (status === DispyJob.Finished || status === DispyJob.Terminated || status === DispyJob.Cancelled) {
    finished++;
    runOn.set(job.id, (runOn.get(job.id) ?? 0) + 1);
    for (const [known, free] of freeCpus) if (known.ipAddr === job.ipAddr) freeCpus.set(known, free + 1);
    if (finished === TOTAL) allDone();
  }
  // A status callback must not block; schedule after it returns.
  queueMicrotask(schedule);
}

const cluster = new JobCluster(compute, { nodes: [host], nodePort: Number(port), port: 0, clusterStatus });
await done;
await cluster.close();
console.log(JSON.stringify({ finished, runOn: Object.fromEntries(runOn) }));
