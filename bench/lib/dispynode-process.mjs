// Starts a real dispynode (the CLI from apps/dispynode) as a child process on loopback, and
// stops it again. Benchmarking the real process, not an in-process DispyNodeServer, keeps the
// client and the node from sharing one event loop, as they would not in production.
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = path.join(ROOT, 'apps/dispynode/dist/bin.js');
const HOST = '127.0.0.1';
const READY_TEXT = 'serving';
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
/** Keep only the end of the node's log: enough to explain a failure, bounded in memory. */
const LOG_TAIL_CHARS = 4_000;

// Nodes not stopped yet, each as { child, destDir, stop }. If this process exits without
// stopping them (an uncaught error, process.exit), the 'exit' hook kills them and removes their
// directories synchronously (nothing async runs in an 'exit' hook) so none is left behind. Their
// worker processes exit on their own when the node's IPC channel disconnects.
const live = new Set();
process.on('exit', () => {
  for (const { child, destDir } of live) {
    child.kill('SIGKILL');
    rmSync(destDir, { recursive: true, force: true });
  }
});

/** Stops every node still running, cleanly (for a SIGINT handler before it exits). */
export async function stopAllDispynodes() {
  await Promise.all([...live].map((entry) => entry.stop()));
}

/**
 * Starts `dispynode -i 127.0.0.1 -p PORT -c CPUS --daemon` with a fresh temporary
 * --dest-path-prefix (and `extraArgs`, e.g. `['--max-file-size', '0']`) and resolves once it
 * logs that it is serving.
 * @returns {Promise<{ host: string, port: number, pid: number, log: () => string, stop: () => Promise<void> }>}
 */
export async function startDispynode({ cpus = 2, extraArgs = [] } = {}) {
  const port = await freePort();
  const destDir = await mkdtemp(path.join(os.tmpdir(), 'dispy-bench-node-'));
  const args = [BIN, '-i', HOST, '-p', String(port), '-c', String(cpus), '--daemon', '--dest-path-prefix', destDir, ...extraArgs];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const entry = { child, destDir, stop: () => stop() };
  live.add(entry);

  let tail = '';
  const keep = (chunk) => {
    tail = (tail + chunk).slice(-LOG_TAIL_CHARS);
  };
  child.stdout.setEncoding('utf8').on('data', keep);
  child.stderr.setEncoding('utf8');
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  let stopped;
  const stop = () => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        // The node closes its sockets and workers on SIGTERM; force it if that takes too long.
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      await rm(destDir, { recursive: true, force: true });
      live.delete(entry);
    })();
    return stopped;
  };

  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => done(new Error(`dispynode did not print "${READY_TEXT}" within ${START_TIMEOUT_MS} ms; its log:\n${tail}`)),
        START_TIMEOUT_MS,
      );
      let settled = false;
      const done = (error) => {
        if (settled) return; // a later exit (at stop) must not touch the listeners again
        settled = true;
        clearTimeout(timer);
        child.stderr.off('data', onData);
        child.stderr.on('data', keep); // keep draining the pipe so the node never blocks on a full one
        if (error) reject(error);
        else resolve();
      };
      const onData = (chunk) => {
        keep(chunk);
        if (tail.includes(READY_TEXT)) done();
      };
      child.stderr.on('data', onData);
      child.once('error', (error) => done(new Error(`could not start dispynode: ${error.message}`)));
      exited.then(({ code, signal }) => done(new Error(`dispynode exited (code ${code}, signal ${signal}) before serving; its log:\n${tail}`)));
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { host: HOST, port, pid: child.pid, log: () => tail, stop };
}
