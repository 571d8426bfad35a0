/*
 * The chaos run of issue 10: 1,000 short jobs on three real dispynodes, each behind a TCP relay of
 * the test's own, while the test cuts links and SIGKILLs and restarts nodes at random moments
 * (`reentrant: true`). Every job must end Finished exactly once, with its own result.
 *
 * The faults come from a seeded schedule; the seed is printed, and DISPY_CHAOS_SEED=N replays it
 * (the moments are counts of finished jobs, so a replay meets the same faults at about the same
 * point of the run, though the interleaving with the processes is never quite the same), and
 * DISPY_CHAOS_LOGLEVEL=debug logs the client's reconnect attempts too. On a failure the ends of
 * the client's and the nodes' logs are printed.
 *
 * A killed node is restarted on the same address, port and --dest-path-prefix, as an operator
 * restarts a node: so the client reconnects to the same node within its zombie interval, and
 * the node finds the replies it saved to disk while its link was down (saved replies survive
 * SIGKILL). That is the path where a result could be lost (a reply saved but never resent) or
 * delivered twice (a reply resent from disk for a job the client already ended, or requeued
 * elsewhere). A fresh prefix would only test a new node at an old address: the dead-node rules
 * alone, which the link-cut test already covers.
 *
 * Loopback addresses of this file: 127.0.177.*.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, onTestFailed, vi } from 'vitest';
import { DispyJob, DispyNode, JobCluster } from '../src/index.js';
import { freePort, startNode, stopAllNodes, type NodeProcess } from '../../../testing/dispynode-process.mjs';
import { startRelay, type TcpRelay } from '../../../testing/tcp-relay.js';
import { captureClientLog } from './capture-client-log.js';

const JOBS = 1000;
/** The whole run (jobs and faults) must end within this; the test's own timeout is a little longer. */
const RUN_SECONDS = 100;
/** A node killed for longer than this is given up by the client (its jobs are queued again); for less it is reconnected to. */
const ZOMBIE_SECONDS = 3;
const NODE_ARGS = ['--heartbeat-interval', '0.5', '--zombie-interval', String(ZOMBIE_SECONDS / 60)];

const clusters: JobCluster[] = [];
const relays: TcpRelay[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 5 })));
  await Promise.all(relays.splice(0).map((relay) => relay.close()));
  await stopAllNodes();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  vi.restoreAllMocks();
});

/** mulberry32: a small seeded generator, so a schedule can be replayed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The result job `n` must return (the job computes the same on the node). */
function expected(n: number): string {
  let hash = n;
  for (let i = 0; i < 500; i++) hash = (hash * 31 + i) % 1000003;
  return `${n}:${hash}`;
}

type Fault =
  /** Cuts a node's links; `againMs`: once more that much later, while the client reconnects and takes its computation back. */
  | { kind: 'cut'; at: number; node: number; delayMs: number; againMs?: number }
  /**
   * SIGKILL, down for `downMs` (longer than the zombie interval: the client gives the node up),
   * restarted; `cutFirst`: its link is cut first, so it dies detached, saving replies to disk.
   */
  | { kind: 'kill'; at: number; node: number; delayMs: number; downMs: number; cutFirst: boolean };

/** Faults at random moments (counts of finished jobs), on random nodes, one at a time. */
function schedule(random: () => number): Fault[] {
  const pick = (low: number, high: number) => low + Math.floor(random() * (high - low + 1));
  const faults: Fault[] = [];
  const cuts = pick(6, 10);
  for (let i = 0; i < cuts; i++) {
    const againMs = random() < 0.3 ? pick(200, 600) : undefined;
    faults.push({ kind: 'cut', at: pick(20, 950), node: pick(0, 2), delayMs: pick(0, 100), againMs });
  }
  const kills = pick(2, 4);
  for (let i = 0; i < kills; i++) {
    const downMs = random() < 0.25 ? pick(ZOMBIE_SECONDS * 1000 + 500, ZOMBIE_SECONDS * 1000 + 2000) : pick(100, 1500);
    faults.push({ kind: 'kill', at: pick(50, 850), node: pick(0, 2), delayMs: pick(0, 100), downMs, cutFirst: random() < 0.5 });
  }
  return faults.sort((a, b) => a.at - b.at);
}

interface ChaosNode {
  host: string;
  relayHost: string;
  prefix: string;
  process: NodeProcess;
  relay: TcpRelay;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the chaos run', () => {
  it('1,000 jobs on three nodes through cut links and SIGKILLed, restarted nodes: each ends Finished once, with its result', async () => {
    const started = Date.now();
    const deadline = started + RUN_SECONDS * 1000;
    const seed =
      process.env['DISPY_CHAOS_SEED'] !== undefined ? Number(process.env['DISPY_CHAOS_SEED']) : Math.floor(Math.random() * 2 ** 31);
    expect(Number.isInteger(seed), `DISPY_CHAOS_SEED must be an integer, got ${process.env['DISPY_CHAOS_SEED']}`).toBe(true);
    console.log(`chaos: seed ${seed} (replay with DISPY_CHAOS_SEED=${seed})`);
    const faults = schedule(seeded(seed));

    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-chaos-'));
    dirs.push(dir);
    const runs = path.join(dir, 'runs.txt');
    const recoverFile = path.join(dir, 'recover');
    const port = await freePort('127.0.177.11');
    const nodes: ChaosNode[] = [];
    for (const i of [1, 2, 3]) {
      const host = `127.0.177.${10 + i}`;
      const relayHost = `127.0.177.${20 + i}`;
      const prefix = mkdtempSync(path.join(os.tmpdir(), 'dispy-chaos-prefix-'));
      dirs.push(prefix);
      const nodeProcess = await startNode({
        host,
        port,
        cpus: 2,
        args: ['--ext-host', relayHost, ...NODE_ARGS, '--dest-path-prefix', prefix],
      });
      const relay = await startRelay(relayHost, host, port);
      relays.push(relay);
      nodes.push({ host, relayHost, prefix, process: nodeProcess, relay });
    }

    const log = captureClientLog();
    // What happened last, to tell a failure's cause from a seed that does not replay it exactly.
    const tail = (text: string, lines: number) => text.trimEnd().split('\n').slice(-lines).join('\n');
    onTestFailed(() => {
      console.log(`chaos: failed with seed ${seed}; the client's log ends:\n${tail(log(), 60)}`);
      for (const node of nodes) console.log(`chaos: the log of node ${node.host} ends:\n${tail(node.process.log, 30)}`);
    });
    const created = new Map<DispyJob, number>();
    const finishedCalls = new Map<DispyJob, number>();
    const otherEnds = new Map<DispyJob, string[]>();
    let finished = 0;
    /** Each time a node (by the host it is connected at: its relay) began to serve the cluster. */
    const initialized: Array<{ host: string; at: number }> = [];
    const restarts: Array<{ host: string; at: number }> = [];
    /** The logs of the node processes killed. */
    const deadLogs: string[] = [];
    const cluster = new JobCluster(
      async (n: number, file: string) => {
        // Each run is recorded on the node's side: a job that ran twice shows twice.
        require('node:fs').appendFileSync(file, `${n}\n`);
        await new Promise((resolve) => setTimeout(resolve, 2 + ((n * 37) % 48)));
        let hash = n;
        for (let i = 0; i < 500; i++) hash = (hash * 31 + i) % 1000003;
        return `${n}:${hash}`;
      },
      {
        nodes: nodes.flatMap((node) => [node.host, node.relayHost]),
        nodePort: port,
        ipAddr: '127.0.0.1',
        port: 0,
        pingInterval: 0.5,
        reentrant: true,
        // A job may be on a killed node more than the default 3 times in a run with many kills.
        maxRetries: 20,
        recoverFile,
        loglevel: process.env['DISPY_CHAOS_LOGLEVEL'] === 'debug' ? 'debug' : 'info',
        clusterStatus: (status, node, job) => {
          if (node !== undefined && job === undefined && status === DispyNode.Initialized)
            initialized.push({ host: node.ipAddr, at: Date.now() });
          if (job !== undefined && status === DispyJob.Created) created.set(job, (created.get(job) ?? 0) + 1);
        },
        callback: (job) => {
          if (job.status === DispyJob.Finished) {
            finishedCalls.set(job, (finishedCalls.get(job) ?? 0) + 1);
            finished++;
          } else if (job.status !== DispyJob.ProvisionalResult) {
            otherEnds.set(job, [...(otherEnds.get(job) ?? []), `${job.status}: ${job.exception}`]);
          }
        },
      },
    );
    clusters.push(cluster as JobCluster);
    const jobs = Array.from({ length: JOBS }, (_, n) => cluster.submit(n, runs));

    const unfinished = () =>
      jobs
        .map((job, n) => ({ n, status: job.status, node: job.ipAddr }))
        .filter(({ status }) => status !== DispyJob.Finished)
        .slice(0, 20);
    /** Waits (bounded by the run's deadline) until `finished` reaches `count`. */
    const progress = (count: number) =>
      vi.waitFor(
        () => {
          if (finished < count) throw new Error(`${finished} of ${JOBS} jobs finished; unfinished: ${JSON.stringify(unfinished())}`);
        },
        { timeout: Math.max(1, deadline - Date.now()), interval: 10 },
      );

    let cuts = 0;
    let linksCut = 0;
    let kills = 0;
    let longKills = 0;
    for (const fault of faults) {
      await progress(fault.at);
      await sleep(fault.delayMs);
      const node = nodes[fault.node]!;
      const cut = () => {
        const count = node.relay.cutNow();
        if (count > 0) cuts++;
        linksCut += count;
      };
      if (fault.kind === 'cut') {
        cut();
        if (fault.againMs !== undefined) {
          await sleep(fault.againMs);
          cut();
        }
        continue;
      }
      if (fault.cutFirst) {
        cut();
        await sleep(fault.delayMs);
      }
      const { child } = node.process;
      const exited = new Promise((resolve) =>
        child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once('exit', resolve),
      );
      child.kill('SIGKILL');
      await exited;
      kills++;
      if (fault.downMs > ZOMBIE_SECONDS * 1000) longKills++;
      deadLogs.push(node.process.log);
      await node.process.stop(); // removes only the directory startNode made, not the shared prefix
      await sleep(fault.downMs);
      node.process = await startNode({
        host: node.host,
        port,
        cpus: 2,
        args: ['--ext-host', node.relayHost, ...NODE_ARGS, '--dest-path-prefix', node.prefix],
      });
      restarts.push({ host: node.relayHost, at: Date.now() });
    }

    expect(await cluster.wait(Math.max(1, (deadline - Date.now()) / 1000)), `unfinished: ${JSON.stringify(unfinished())}`).toBe(true);
    // Discovery finds each restarted node again and sets the computation up there anew.
    await vi.waitFor(
      () => {
        for (const restart of restarts) {
          expect(
            initialized.some(({ host, at }) => host === restart.host && at >= restart.at),
            `${restart.host} serves again`,
          ).toBe(true);
        }
      },
      { timeout: Math.max(1, Math.min(15_000, deadline - Date.now())), interval: 20 },
    );
    await cluster.close({ timeout: 10 });
    const seconds = (Date.now() - started) / 1000;

    const ran = new Map<number, number>();
    for (const line of readFileSync(runs, 'utf8').trim().split('\n')) ran.set(Number(line), (ran.get(Number(line)) ?? 0) + 1);
    let lost = 0;
    let duplicated = 0;
    let wrong = 0;
    let requeued = 0;
    let reruns = 0;
    const problems: string[] = [];
    for (const [n, job] of jobs.entries()) {
      const calls = finishedCalls.get(job) ?? 0;
      const requeues = (created.get(job) ?? 1) - 1;
      const runCount = ran.get(n) ?? 0;
      requeued += requeues > 0 ? 1 : 0;
      reruns += Math.max(0, runCount - 1);
      if (calls === 0 || job.status !== DispyJob.Finished) lost++;
      if (calls > 1) duplicated++;
      if (calls > 0 && job.result !== expected(n)) wrong++;
      if (calls !== 1 || job.status !== DispyJob.Finished || job.result !== expected(n) || otherEnds.has(job)) {
        problems.push(
          `job ${n}: status ${job.status}, Finished ${calls} times, result ${job.result}, other ends ${otherEnds.get(job)?.join('; ')}`,
        );
      }
      // A job runs again only when it was queued again (its node died, or its Job frame was lost on the way).
      if (runCount < 1 || runCount > 1 + requeues) problems.push(`job ${n}: ran ${runCount} times, queued again ${requeues} times`);
    }
    const lostLinks = log().match(/lost the link to node/g)?.length ?? 0;
    // Replies a restarted node read back from disk and resent (the path a restart on the same prefix tests).
    let fromDisk = 0;
    for (const nodeLog of [...deadLogs, ...nodes.map((node) => node.process.log)]) {
      for (const [, count] of nodeLog.matchAll(/reattached \(saved replies only\): \d+ jobs held, (\d+) replies resent/g))
        fromDisk += Number(count);
    }
    console.log(
      `chaos: seed ${seed}, jobs ${JOBS}, faults ${cuts + kills} (cuts ${cuts} of ${linksCut} links, kills ${kills}, ${longKills} of them past the zombie interval), ` +
        `results lost ${lost}, duplicated ${duplicated}, wrong ${wrong}; jobs queued again ${requeued}, runs again ${reruns}, ` +
        `links lost (client log) ${lostLinks}, replies resent from disk after a restart ${fromDisk}, ${seconds.toFixed(1)} s`,
    );
    expect(problems.slice(0, 20)).toEqual([]);
    expect({ lost, duplicated, wrong }).toEqual({ lost: 0, duplicated: 0, wrong: 0 });
    expect(kills).toBe(faults.filter((fault) => fault.kind === 'kill').length);
    expect(cuts).toBeGreaterThanOrEqual(3);
    // A clean close that delivered every result removes the recover file.
    expect(existsSync(recoverFile)).toBe(false);
  }, 150_000);
});
