/*
 * Starts real `dispynode` processes the way a user does (the built CLI) on loopback addresses,
 * and stops every one of them. Shared by the integration tests and `pnpm bench` (so it is plain
 * JavaScript; its types are in dispynode-process.d.mts).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { watchLog } from './process-log.mjs';

export const DISPYNODE_BIN = fileURLToPath(new URL('../apps/dispynode/dist/bin.js', import.meta.url));

const running = new Set();

// If the process ends without stopping its nodes (an uncaught error, process.exit), kill them so
// none is left behind; their workers leave when the node's IPC channel closes.
process.on('exit', () => {
  for (const node of running) {
    node.child.kill('SIGKILL');
    if (node.ownsPrefix) rmSync(node.destPathPrefix, { recursive: true, force: true });
  }
});

/** A TCP port free on `host` whose UDP twin is free too. */
export async function freePort(host) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, host, () => {
        const { port } = server.address();
        server.close(() => resolve(port));
      });
    });
    const udpFree = await new Promise((resolve) => {
      const socket = dgram.createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, host, () => socket.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error(`no free port on ${host}`);
}

/**
 * Starts `dispynode -i HOST -p PORT -c CPUS --daemon --dest-path-prefix DIR` and waits until it
 * serves (inside the network namespace `netns` if given; without `host`, on every interface).
 * DIR is a new temporary directory, removed when the node stops, unless the caller names one (`destPathPrefix`, to start a node again on it): that one is the caller's to remove.
 */
export async function startNode(options) {
  // In a network namespace (`netns`) the port is the caller's: freePort looks in ours.
  const port = options.port ?? (await freePort(options.host));
  const ownsPrefix = options.destPathPrefix === undefined;
  const destPathPrefix = options.destPathPrefix ?? mkdtempSync(path.join(os.tmpdir(), 'dispy-test-node-'));
  // execArgv: flags for Node itself (--cpu-prof, --inspect), which NODE_OPTIONS may not carry.
  const args = [
    ...(options.execArgv ?? []),
    DISPYNODE_BIN,
    ...(options.host !== undefined ? ['-i', options.host] : []),
    '-p',
    String(port),
    '-c',
    String(options.cpus ?? 2),
    '--daemon',
    '--dest-path-prefix',
    destPathPrefix,
  ];
  args.push(...(options.args ?? []));
  // The secret goes in the environment, as users should give it (-s on the command line warns).
  const env = { ...process.env, ...(options.secret !== undefined ? { DISPY_SECRET: options.secret } : {}), ...options.env };
  // `ip netns exec` execs Node in the namespace: the child's PID is the node's.
  const child = options.netns
    ? spawn('ip', ['netns', 'exec', options.netns, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const watched = watchLog(child, 'node');
  const exited = watched.exited;
  const node = {
    host: options.host,
    port,
    child,
    destPathPrefix,
    ownsPrefix,
    get log() {
      return watched.log;
    },
    waitForLog: watched.waitForLog,
    // Its children but the watchdog (orphan-watchdog.ts), which runs `node -e`.
    workerPids: () => childPids(child.pid).filter((pid) => !isWatchdog(pid)),
    async stop() {
      running.delete(node);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const force = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(force);
      }
      if (ownsPrefix) rmSync(destPathPrefix, { recursive: true, force: true });
    },
  };
  running.add(node);
  try {
    await node.waitForLog(/serving \d+ CPUs/);
  } catch (error) {
    await node.stop();
    throw error;
  }
  return node;
}

/** Stops every node still running (for afterEach). */
export async function stopAllNodes() {
  await Promise.all([...running].map((node) => node.stop()));
}

/** Whether `pid` is a node's watchdog of its workers (its environment names the node's token). */
function isWatchdog(pid) {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .some((entry) => entry.startsWith('DISPY_WATCHDOG_TOKEN='));
  } catch {
    return false;
  }
}

/** PIDs of the direct children of `pid` (read from /proc, so no procps is needed). */
export function childPids(pid) {
  const children = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return children;
}

/** True while a process with this PID exists. */
export function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
