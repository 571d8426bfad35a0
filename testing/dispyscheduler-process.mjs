/*
 * Starts real `dispyscheduler` processes the way a user does (the built CLI) on loopback
 * addresses, and stops every one of them. Shared by the integration tests and `pnpm bench`.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { watchLog } from './process-log.mjs';
import { freePort } from './dispynode-process.mjs';

export const DISPYSCHEDULER_BIN = fileURLToPath(new URL('../apps/dispyscheduler/dist/bin.js', import.meta.url));

const running = new Set();

process.on('exit', () => {
  for (const scheduler of running) {
    scheduler.child.kill('SIGKILL');
    rmSync(scheduler.destPath, { recursive: true, force: true });
  }
});

/**
 * Starts `dispyscheduler -i HOST -n NODE... --node-port P --scheduler-port PORT --daemon` with the
 * secrets in its environment, and waits for its startup line.
 */
export async function startScheduler(options) {
  const port = options.port ?? (await freePort(options.host));
  const dispyPort = options.dispyPort ?? (await freePort(options.host));
  const destPath = mkdtempSync(path.join(os.tmpdir(), 'dispy-test-scheduler-'));
  const args = [
    DISPYSCHEDULER_BIN,
    '-i',
    options.host,
    ...options.nodes.flatMap((node) => ['-n', node]),
    '--node-port',
    String(options.nodePort),
    '-p',
    String(dispyPort),
    '--scheduler-port',
    String(port),
    '--dest-path',
    destPath,
    '--daemon',
    ...(options.args ?? []),
  ];
  const env = {
    ...process.env,
    ...(options.nodeSecret !== undefined ? { DISPY_NODE_SECRET: options.nodeSecret } : {}),
    ...(options.clusterSecret !== undefined ? { DISPY_CLUSTER_SECRET: options.clusterSecret } : {}),
  };
  // In a network namespace (`netns`, via `ip netns exec`, which execs Node: same PID) the ports are the caller's.
  const child = options.netns
    ? spawn('ip', ['netns', 'exec', options.netns, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const watched = watchLog(child, 'dispyscheduler');
  const exited = watched.exited;
  const scheduler = {
    host: options.host,
    port,
    child,
    destPath,
    exited,
    get log() {
      return watched.log;
    },
    waitForLog: watched.waitForLog,
    async stop(signal = 'SIGTERM') {
      running.delete(scheduler);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const force = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(force);
      }
      rmSync(destPath, { recursive: true, force: true });
    },
  };
  running.add(scheduler);
  try {
    await scheduler.waitForLog(/serving SharedJobClusters at /);
  } catch (error) {
    await scheduler.stop();
    throw error;
  }
  return scheduler;
}

/** Stops every scheduler still running (for afterEach). */
export async function stopAllSchedulers() {
  await Promise.all([...running].map((scheduler) => scheduler.stop()));
}
