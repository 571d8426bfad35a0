/*
 * Worker pools of two computations sharing the node's CPU slots (issue 11): never more jobs at
 * once than slots, whatever each pool's size, and the slots go round-robin, so a pool with a long
 * backlog does not keep one with a short one waiting to its end. Real worker processes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeValue, encodeArguments } from '@dispy/protocol';
import { createLogger } from '@dispy/protocol/internal';
import { CpuSlots } from '../src/execution/cpu-slots.js';
import { WorkerPool, type JobOutcome } from '../src/execution/worker-pool.js';

let dir: string;
const pools: WorkerPool[] = [];

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-pool-sharing-'));
});

afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
  rmSync(dir, { recursive: true, force: true });
});

/** Busy for `ms`; returns when it ran. */
const stamp = `function stamp(ms) { const start = Date.now(); while (Date.now() - start < ms); return [start, Date.now()]; }`;

interface Ran {
  pool: string;
  jobId: number;
  start: number;
  end: number;
}

async function poolOf(name: string, slots: CpuSlots, ran: Ran[], done: Map<string, () => void>): Promise<WorkerPool> {
  const pool = new WorkerPool({
    size: 2,
    slots,
    logger: createLogger(`pool ${name}`, 'silent'),
    init: { type: 'init', name: 'stamp', source: stamp, computeDir: dir, nodeName: 'test', nodeAddress: '127.0.0.1', definitions: [] },
    onDone: (outcome: JobOutcome) => {
      expect(outcome.ok, outcome.exception).toBe(true);
      const [start, end] = decodeValue(outcome.result!) as [number, number];
      ran.push({ pool: name, jobId: outcome.jobId, start, end });
      done.get(`${name}/${outcome.jobId}`)?.();
    },
  });
  pools.push(pool);
  await pool.start();
  return pool;
}

describe('worker pools sharing the CPU slots', () => {
  it('run no more jobs at once than slots, and take turns', async () => {
    const slots = new CpuSlots(1);
    const ran: Ran[] = [];
    const done = new Map<string, () => void>();
    const ended = (key: string) => new Promise<void>((resolve) => done.set(key, resolve));
    const [big, small] = await Promise.all([poolOf('big', slots, ran, done), poolOf('small', slots, ran, done)]);
    const bigLast = ended('big/12');
    const bigFirst = ended('big/1');
    for (let jobId = 1; jobId <= 12; jobId++) big.run(jobId, [encodeArguments([30])]);
    await bigFirst;
    const smallLast = ended('small/2');
    for (let jobId = 1; jobId <= 2; jobId++) small.run(jobId, [encodeArguments([30])]);
    await Promise.all([bigLast, smallLast]);
    // One slot: the runs never overlap, though each pool has two workers.
    const sorted = [...ran].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.start).toBeGreaterThanOrEqual(sorted[i - 1]!.end);
    // The small pool's jobs ran before the big one's backlog was done (a batch is at most 4 jobs).
    const order = sorted.map((run) => run.pool);
    expect(order.lastIndexOf('small')).toBeLessThan(order.lastIndexOf('big'));
    expect(order.indexOf('small')).toBeLessThanOrEqual(8);
    expect(slots.inUse).toBe(0);
  });
});
