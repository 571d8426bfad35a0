import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { decodeValue, encodeArguments } from '@dispy/protocol';
import { createLogger } from '@dispy/protocol/internal';
import { WorkerPool, type JobOutcome } from '../src/execution/worker-pool.js';
import { childPids, isAlive } from '../../../testing/dispynode-process.mjs';

let dir: string;
let pool: WorkerPool | undefined;

/** A pool of `size` workers for `source`, whose outcomes can be awaited by job id. */
async function startPool(source: string, size = 1) {
  const outcomes = new Map<number, JobOutcome>();
  const waiting = new Map<number, (outcome: JobOutcome) => void>();
  const reported: number[] = [];
  const started: number[] = [];
  pool = new WorkerPool({
    size,
    logger: createLogger('test pool', 'silent'),
    init: { type: 'init', name: 'computation', source, computeDir: dir, nodeName: 'test', nodeAddress: '127.0.0.1', definitions: [] },
    onDone: (outcome) => {
      reported.push(outcome.jobId);
      outcomes.set(outcome.jobId, outcome);
      waiting.get(outcome.jobId)?.(outcome);
    },
    onStarted: (jobId) => started.push(jobId),
  });
  await pool.start();
  const outcome = (jobId: number) =>
    outcomes.get(jobId) ? Promise.resolve(outcomes.get(jobId)!) : new Promise<JobOutcome>((resolve) => waiting.set(jobId, resolve));
  return { pool, outcome, reported, started };
}

const args = (...values: unknown[]) => [encodeArguments(values)];

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-pool-test-'));
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});

afterEach(async () => {
  await pool?.close();
  pool = undefined;
  expect(childPids(process.pid).filter((pid) => isAlive(pid) && !isZombie(pid))).toEqual([]);
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
  rmSync(dir, { recursive: true, force: true });
});

/** A child that exited but was not reaped yet still has a PID; it runs nothing. */
function isZombie(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

const spin = `function spin(forever) { if (forever) return new Promise(() => {}); return 'done'; }`;

describe('WorkerPool', () => {
  it('ends a job that runs past its timeout as Terminated, and replaces its worker', async () => {
    const { outcome } = await startPool(spin);
    pool!.run(1, args(true), 5_000);
    await vi.waitUntil(() => pool!.runningJobs().length === 1, { interval: 1 });
    await vi.advanceTimersByTimeAsync(5_000);
    const ended = await outcome(1);
    expect(ended).toMatchObject({ jobId: 1, ok: false });
    expect(ended.exception).toBe('dispy: the job timed out after 5 s; its worker process was stopped');
    // The replacement takes the next job.
    pool!.run(2, args(false));
    const next = await outcome(2);
    expect(next.ok).toBe(true);
    expect(decodeValue(next.result!)).toBe('done');
  });

  it('cancels a waiting job without running it, and a running one by killing its worker, each reported once', async () => {
    const { outcome, reported } = await startPool(spin);
    pool!.run(1, args(true));
    pool!.run(2, args(true));
    pool!.run(3, args(false));
    await vi.waitUntil(() => pool!.runningJobs().length === 1, { interval: 1 });
    expect(pool!.cancel(2)).toBe(true);
    expect(pool!.cancel(1)).toBe(true);
    expect(pool!.cancel(99)).toBe(false);
    expect((await outcome(2)).cancelled).toBe(true);
    expect((await outcome(1)).cancelled).toBe(true);
    expect((await outcome(3)).ok).toBe(true);
    expect(reported.sort()).toEqual([1, 2, 3]);
  });

  it('ends only the running job of a worker that crashes; jobs queued behind it run in another', async () => {
    const { outcome } = await startPool(`function crash(exit) { if (exit) process.exit(3); return 'ok'; }`);
    pool!.run(1, args(true));
    pool!.run(2, args(false));
    const crashed = await outcome(1);
    expect(crashed.ok).toBe(false);
    expect(crashed.exception).toMatch(/exited \(exit code 3\)/);
    expect((await outcome(2)).ok).toBe(true);
  });

  it('reports the jobs of a pool closed mid-job as cancelled and leaves no worker or timer', async () => {
    const { outcome } = await startPool(spin, 2);
    pool!.run(1, args(true), 60_000);
    pool!.run(2, args(true));
    pool!.run(3, args(true));
    await vi.waitUntil(() => pool!.runningJobs().length === 2, { interval: 1 });
    await pool!.close();
    for (const jobId of [1, 2, 3]) expect((await outcome(jobId)).cancelled).toBe(true);
  });

  it('runs setup in one worker first, and names a setup that fails only in a later worker (it deleted its file)', async () => {
    writeFileSync(path.join(dir, 'data.txt'), 'once');
    // As dispy's node_setup.py does: read the data file in setup, then delete it.
    const setup = 'function setup() { const fs = require("node:fs"); fs.readFileSync("data.txt"); fs.unlinkSync("data.txt"); return 0; }';
    const once = new WorkerPool({
      size: 2,
      logger: createLogger('test pool', 'silent'),
      init: {
        type: 'init',
        name: 'computation',
        source: '() => 1',
        computeDir: dir,
        nodeName: 'test',
        nodeAddress: '',
        definitions: [],
        setup: { name: 'setup', source: setup },
      },
      onDone: () => undefined,
    });
    const failure = once.start().then(
      () => undefined,
      (error: Error) => error.message,
    );
    const message = await failure;
    expect(message).toMatch(
      /^setup succeeded in the first worker process of this node but failed in another; setup runs in every worker process/,
    );
    expect(message).toMatch(/the computation failed to load: Error: ENOENT.*data\.txt/);
  });

  it('rejects start with the load error of a computation that does not load, leaving no worker', async () => {
    const failing = new WorkerPool({
      size: 2,
      logger: createLogger('test pool', 'silent'),
      init: { type: 'init', name: 'broken', source: 'function (', computeDir: dir, nodeName: 'test', nodeAddress: '', definitions: [] },
      onDone: () => undefined,
    });
    await expect(failing.start()).rejects.toThrow(/the computation failed to load/);
  });

  it('reports each job started when its worker takes it up, and gives back jobs queued behind a running one, never reporting them', async () => {
    const { outcome, reported, started } = await startPool(spin);
    // One worker: job 1 runs (for ever), 2 and 3 wait behind it in the worker, 4 in the pool.
    pool!.run(1, args(true));
    pool!.run(2, args(true));
    pool!.run(3, args(true));
    await vi.waitUntil(() => started.length === 1, { interval: 1 });
    expect(started).toEqual([1]);
    // The running job is not given back; those waiting are; one unknown is ignored.
    expect((await pool!.reclaim([1, 2, 3, 7])).sort()).toEqual([2, 3]);
    expect(pool!.runningJobs()).toEqual([1]);
    expect(pool!.cancel(1)).toBe(true);
    await outcome(1);
    pool!.run(4, args(false));
    expect((await outcome(4)).ok).toBe(true);
    expect(started).toEqual([1, 4]);
    // Jobs given back never ran and were never reported.
    expect(reported).toEqual([1, 4]);
  });

  it('moves jobs queued behind a long job to a worker that went idle (a batch of short and long jobs)', async () => {
    // "long" jobs wait for a file the test writes; "short" ones return at once.
    const release = path.join(dir, 'release');
    const { outcome, started } = await startPool(
      `async function job(kind, file) {
        const { existsSync } = require('node:fs');
        while (kind === 'long' && !existsSync(file)) await new Promise((resolve) => setTimeout(resolve, 5));
        return kind;
      }`,
      2,
    );
    // Handed out in one tick: one worker gets both short jobs, the other both long ones, in a batch.
    pool!.run(1, args('short', release));
    pool!.run(2, args('short', release));
    pool!.run(3, args('long', release));
    pool!.run(4, args('long', release));
    await outcome(1);
    await outcome(2);
    // The idle worker takes job 4 from behind job 3: both long jobs run at once.
    await vi.waitUntil(() => pool!.runningJobs().length === 2, { interval: 1, timeout: 10_000 });
    expect(pool!.runningJobs().sort()).toEqual([3, 4]);
    writeFileSync(release, '');
    expect([(await outcome(3)).ok, (await outcome(4)).ok]).toEqual([true, true]);
    expect(started.sort()).toEqual([1, 2, 3, 4]);
  });
});
