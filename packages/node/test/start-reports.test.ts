/*
 * A computation's job starts go to its client in batches (JobEvent RUNNING): one frame per
 * START_BATCH_MS whatever the number of jobs, none for a job whose reply went first, none while
 * no client is attached. Fake timers; no process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { dispy, type FrameInit } from '@dispy/protocol';
import { createLogger } from '@dispy/protocol/internal';
import { KeptComputation, START_BATCH_MS, type ReplyLink } from '../src/session/kept-computation.js';

let dir: string;
let kept: KeptComputation;
let frames: FrameInit[];

const link: ReplyLink = {
  send: (frame) => {
    frames.push(frame);
    return true;
  },
  drain: () => Promise.resolve(),
  sendFile: () => Promise.resolve(),
  requestShutdown: () => undefined,
};

const outcome = (jobId: number) => ({ jobId, ok: true, stdout: '', stderr: '', startTime: 1, endTime: 2, cpuTime: 0 });
const runningEvents = () => frames.filter((frame) => frame.jobEvent).map((frame) => frame.jobEvent!);

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-starts-'));
  frames = [];
  kept = new KeptComputation({ computeId: 'c1', destPathPrefix: dir, logger: createLogger('test', 'silent'), onIdle: () => undefined });
});

afterEach(async () => {
  await kept.forget();
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
  rmSync(dir, { recursive: true, force: true });
});

describe('KeptComputation: job starts reported in batches', () => {
  it('sends one JobEvent for a thousand starts, leaving out the jobs whose reply went first', async () => {
    kept.attach(link);
    for (let jobId = 1; jobId <= 1000; jobId++) kept.jobStarted(jobId);
    for (let jobId = 1; jobId <= 1000; jobId++) kept.events.onStarted!(jobId, 5000 + jobId);
    kept.events.onDone(outcome(7));
    expect(runningEvents()).toEqual([]);
    await vi.advanceTimersByTimeAsync(START_BATCH_MS);
    const events = runningEvents();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ computeId: 'c1', event: dispy.JobEvent.Event.RUNNING });
    const ids = events[0]!.jobIds as number[];
    expect(ids).toHaveLength(999);
    expect(ids).not.toContain(7);
    expect(events[0]!.startTimes![0]).toBe(5001);
    // Nothing more until the next start.
    await vi.advanceTimersByTimeAsync(10 * START_BATCH_MS);
    expect(runningEvents()).toHaveLength(1);
  });

  it('reports nothing while detached, and a job reclaimed (given back) neither', async () => {
    kept.jobStarted(1);
    kept.events.onStarted!(1, 10);
    kept.attach(link);
    kept.jobStarted(2);
    kept.jobStarted(3);
    kept.events.onStarted!(2, 20);
    kept.reclaimed([3]);
    kept.events.onStarted!(3, 30);
    await vi.advanceTimersByTimeAsync(START_BATCH_MS);
    expect(runningEvents().map((event) => event.jobIds)).toEqual([[2]]);
    expect(kept.heldJobIds).toEqual([1, 2]);
  });

  it('sends a start before the provisional result of its job', async () => {
    kept.attach(link);
    kept.jobStarted(4);
    kept.events.onStarted!(4, 40);
    kept.events.onProvisional!(4, new Uint8Array([1]));
    expect(frames.map((frame) => Object.keys(frame)[0])).toEqual(['jobEvent', 'jobReply']);
  });
});
