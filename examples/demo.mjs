// The quick-start demo (`pnpm demo`): starts a dispynode on loopback, sends it a computation,
// runs a few hundred jobs on its CPUs, prints the results and the per-node table, and stops.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JobCluster, DispyJob } from '@dispy/client';

const HOST = '127.0.0.1';
const dispynode = fileURLToPath(new URL('../apps/dispynode/dist/bin.js', import.meta.url));

/** Estimates pi from `samples` random points; runs on the node, one job per call. */
function estimatePi(samples) {
  let inside = 0;
  for (let i = 0; i < samples; i++) {
    const x = Math.random();
    const y = Math.random();
    if (x * x + y * y <= 1) inside++;
  }
  console.log(`job on ${require('node:os').hostname()} (pid ${process.pid}): ${inside} of ${samples} inside`);
  return (4 * inside) / samples;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const port = await freePort();
const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-demo-'));
console.log(`Starting dispynode on ${HOST}:${port} ...`);
const node = spawn(process.execPath, [dispynode, '-i', HOST, '-p', String(port), '--daemon', '--dest-path-prefix', dir], {
  stdio: ['ignore', 'inherit', 'pipe'],
  env: { ...process.env, DISPY_SECRET: 'a demo secret, long enough' },
});
await new Promise((resolve, reject) => {
  let log = '';
  node.stderr.on('data', (chunk) => {
    log += chunk;
    if (/serving \d+ CPUs/.test(log)) resolve();
  });
  node.once('exit', (code) => reject(new Error(`dispynode exited (${code}):\n${log}`)));
});

try {
  const cluster = new JobCluster(estimatePi, {
    nodes: [HOST],
    nodePort: port,
    secret: 'a demo secret, long enough',
    ipAddr: HOST,
    port: 0,
  });
  const started = Date.now();
  const jobs = [];
  for (let i = 0; i < 200; i++) jobs.push(cluster.submit(200_000));
  const estimates = await Promise.all(jobs.map((job) => job.wait()));
  const mean = estimates.reduce((sum, value) => sum + value, 0) / estimates.length;
  console.log(jobs[0].stdout.trim());
  console.log(
    `\n${jobs.filter((job) => job.status === DispyJob.Finished).length} of ${jobs.length} jobs finished in ${Date.now() - started} ms`,
  );
  console.log(`pi is about ${mean.toFixed(5)} (error ${Math.abs(mean - Math.PI).toExponential(2)})`);
  cluster.stats();
  await cluster.close();
} finally {
  node.kill('SIGTERM');
  await new Promise((resolve) => node.once('exit', resolve));
  rmSync(dir, { recursive: true, force: true });
}
