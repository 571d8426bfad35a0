import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '@dispy/protocol/internal';
import type { Socket } from 'node:net';
import { NODE_MARK_VARIABLE, renewNodeToken } from './process-marks.js';

/**
 * The watchdog's code (run with `node -e`). It waits for its stdin, a pipe whose other end only
 * the node process holds, to end: that happens when the node process exits, whatever ends it
 * (SIGKILL, a crash, the OOM killer), since the kernel closes the node's descriptors. It then
 * SIGKILLs every process whose environment holds the node's mark (process-marks.ts): the
 * workers, even one stuck in a CPU-bound loop that could never notice its parent is gone, and
 * whatever their jobs started. It ignores the signals a terminal or a service manager sends the
 * node's group, so it outlives the node; it exits once done.
 */
const WATCHDOG_SOURCE = `
const fs = require('node:fs');
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']) process.on(signal, () => {});
const entry = Buffer.from(${JSON.stringify(NODE_MARK_VARIABLE)} + '=' + process.env.DISPY_WATCHDOG_TOKEN + '\\0');
function marked(environ) {
  for (let at = environ.indexOf(entry); at >= 0; at = environ.indexOf(entry, at + 1)) if (at === 0 || environ[at - 1] === 0) return true;
  return false;
}
let done = false;
function reap() {
  if (done) return;
  done = true;
  for (let round = 0; round < 5; round++) {
    let found = 0;
    for (const name of fs.readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(name) || Number(name) === process.pid) continue;
      let environ;
      try { environ = fs.readFileSync('/proc/' + name + '/environ'); } catch { continue; }
      if (!marked(environ)) continue;
      found++;
      try { process.kill(Number(name), 'SIGKILL'); } catch {}
    }
    if (found === 0) break;
  }
  process.exit(0);
}
process.stdin.on('data', () => {});
process.stdin.on('end', reap);
process.stdin.on('error', reap);
`;

let watchdog: ChildProcess | undefined;
let users = 0;

/**
 * Starts the watchdog that kills this node's workers, and what their jobs started, when the node
 * process ends without stopping them (see WATCHDOG_SOURCE); Linux only (elsewhere it does
 * nothing). One per process, shared by the servers in it: the last `stop()` ends it, which also
 * kills whatever of the node's processes is left then. Never keeps the event loop alive.
 */
export function startOrphanWatchdog(logger: Logger): { stop(): void } {
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    if (--users === 0) {
      watchdog?.stdin?.end();
      watchdog = undefined;
    }
  };
  users++;
  if (watchdog || process.platform !== 'linux') return { stop };
  const child = spawn(process.execPath, ['-e', WATCHDOG_SOURCE], {
    // Its own session: a terminal's ^C or a kill of the node's process group leaves it be.
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
    // Not marked itself (it looks for the mark), and no secret of the node's.
    env: { PATH: process.env.PATH ?? '', DISPY_WATCHDOG_TOKEN: renewNodeToken() },
  });
  child.on('error', (error) => logger.warn(`the watchdog of worker processes could not start: ${error.message}`));
  // A pipe is a net.Socket: unref'd, it never keeps the node's event loop alive.
  const stdin = child.stdin as unknown as Socket;
  stdin.on('error', () => undefined);
  stdin.unref();
  child.unref();
  watchdog = child;
  return { stop };
}
