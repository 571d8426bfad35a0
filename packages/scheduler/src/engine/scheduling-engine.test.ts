import { describe, expect, it } from 'vitest';
import { SchedulingEngine, pipelineDepth, type EngineJob } from './scheduling-engine.js';

interface TestJob extends EngineJob {
  uid: number;
}

function harness(jobsPerCpu?: number) {
  const sent: Array<[string, number]> = [];
  const engine = new SchedulingEngine<TestJob>({ dispatch: (node, job) => sent.push([node, job.uid]) }, { jobsPerCpu });
  const settle = () => new Promise<void>((resolve) => queueMicrotask(resolve));
  return { engine, sent, settle };
}

const job = (uid: number, extra: Partial<TestJob> = {}): TestJob => ({ uid, priority: 0, computeId: 'c', ...extra });

describe('SchedulingEngine', () => {
  it('does not dispatch while submitting: one pass runs after the loop', async () => {
    const { engine, sent, settle } = harness(1);
    engine.addNode('a:1', 'a', 2, 'c');
    for (let uid = 1; uid <= 5; uid++) engine.submit(job(uid));
    expect(sent).toEqual([]);
    await settle();
    expect(sent).toEqual([
      ['a:1', 1],
      ['a:1', 2],
    ]);
    expect(engine.pendingCount).toBe(3);
  });

  it('sends each job to the least loaded node with room', async () => {
    const { engine, sent, settle } = harness(1);
    engine.addNode('a:1', 'a', 4, 'c');
    engine.addNode('b:1', 'b', 1, 'c');
    for (let uid = 1; uid <= 5; uid++) engine.submit(job(uid));
    await settle();
    const perNode = (key: string) => sent.filter(([node]) => node === key).length;
    expect(perNode('a:1')).toBe(4);
    expect(perNode('b:1')).toBe(1);
    engine.jobDone('b:1', sent.find(([node]) => node === 'b:1')![1]);
    engine.submit(job(6));
    await settle();
    expect(sent.at(-1)).toEqual(['b:1', 6]);
  });

  it('lets computations of equal priority take turns on a node, however long one queue is', async () => {
    const { engine, sent, settle } = harness(1);
    engine.addNode('a:1', 'a', 1, 'long');
    engine.addNode('a:1', 'a', 1, 'short');
    for (let uid = 1; uid <= 5; uid++) engine.submit(job(uid, { computeId: 'long' }));
    engine.submit(job(101, { computeId: 'short' }));
    engine.submit(job(102, { computeId: 'short' }));
    for (let done = 0; done < 7; done++) {
      await settle();
      engine.jobDone('a:1', sent.at(-1)![1]);
    }
    expect(sent.map(([, uid]) => uid)).toEqual([1, 101, 2, 102, 3, 4, 5]);
  });

  it('keeps pinned jobs for their node, even before it exists', async () => {
    const { engine, sent, settle } = harness(1);
    engine.addNode('a:1', 'a', 2, 'c');
    engine.submit(job(1, { pinnedHost: 'b' }));
    await settle();
    expect(sent).toEqual([]);
    engine.addNode('b:1', 'b', 1, 'c');
    await settle();
    expect(sent).toEqual([['b:1', 1]]);
  });

  it('pins a job to one node of an address by its key', async () => {
    const { engine, sent, settle } = harness(1);
    engine.addNode('a:1', 'a', 1, 'c');
    engine.addNode('a:2', 'a', 1, 'c');
    engine.submit(job(1, { pinnedHost: 'a:2' }));
    engine.submit(job(2, { pinnedHost: 'a:2' }));
    await settle();
    expect(sent).toEqual([['a:2', 1]]);
  });

  it('dispatches higher priority first across computations on a node', async () => {
    const { engine, sent, settle } = harness(1);
    engine.submit(job(1, { computeId: 'x', priority: 1 }));
    engine.submit(job(2, { computeId: 'y', priority: 9 }));
    engine.addNode('a:1', 'a', 1, 'x');
    engine.addNode('a:1', 'a', 1, 'y');
    await settle();
    expect(sent).toEqual([['a:1', 2]]);
  });

  it('removes waiting jobs and returns the running ones of a node that goes away', async () => {
    const { engine, sent, settle } = harness(1);
    engine.addNode('a:1', 'a', 1, 'c');
    engine.submit(job(1));
    engine.submit(job(2));
    await settle();
    expect(engine.dequeue(2)).toBe(true);
    expect(engine.dequeue(1)).toBe(false);
    expect(engine.removeNode('a:1').map((j) => j.uid)).toEqual([1]);
    expect(engine.pendingCount).toBe(0);
    expect(sent).toEqual([['a:1', 1]]);
  });

  it('pipelines short jobs deeply and never queues long ones behind another', async () => {
    expect(pipelineDepth(undefined)).toBe(1);
    expect(pipelineDepth(0)).toBe(8);
    expect(pipelineDepth(20)).toBe(4);
    expect(pipelineDepth(100)).toBe(2);
    expect(pipelineDepth(10_000)).toBe(1);
    const { engine, sent, settle } = harness();
    engine.addNode('a:1', 'a', 1, 'c');
    for (let uid = 1; uid <= 20; uid++) engine.submit(job(uid));
    await settle();
    // Until a job's length is known, one job per CPU.
    expect(sent).toHaveLength(1);
    engine.jobDone('a:1', 1, 0);
    await settle();
    expect(sent).toHaveLength(1 + 8);
    for (const [, uid] of sent.slice(1)) engine.jobDone('a:1', uid, 60_000);
    await settle();
    for (const [, uid] of sent.slice(9)) engine.jobDone('a:1', uid, 60_000);
    await settle();
    // The running average is now far above 500 ms: one job per CPU.
    expect(engine.runningOn('a:1')).toHaveLength(1);
  });

  it('holds a job (pending, never dispatched) until it is released, with the pin it has then', async () => {
    const { engine, sent, settle } = harness(1);
    engine.addNode('a:1', 'a', 1, 'c');
    engine.addNode('b:1', 'b', 1, 'c');
    const held: TestJob = job(1);
    engine.hold(held);
    engine.hold(job(2));
    await settle();
    expect(sent).toEqual([]);
    expect(engine.pendingCount).toBe(2);
    expect(engine.isHeld(1)).toBe(true);
    (held as { pinnedHost?: string }).pinnedHost = 'b';
    expect(engine.release(1)).toBe(true);
    expect(engine.release(1)).toBe(false);
    await settle();
    expect(sent).toEqual([['b:1', 1]]);
    // A held job that is dequeued is forgotten: releasing it later does nothing.
    expect(engine.dequeue(2)).toBe(true);
    expect(engine.release(2)).toBe(false);
    expect(engine.pendingCount).toBe(0);
  });
});

describe('SchedulingEngine: jobs sent ahead move to nodes with idle CPUs', () => {
  function stealing() {
    const sent: Array<[string, number]> = [];
    const asked: Array<[string, number[]]> = [];
    const engine = new SchedulingEngine<TestJob>(
      {
        dispatch: (node, job) => sent.push([node, job.uid]),
        reclaim: (node, jobs) => asked.push([node, jobs.map((job) => job.uid)]),
        movable: (job) => job.uid !== 99,
      },
      { jobsPerCpu: 2 },
    );
    const settle = () => new Promise<void>((resolve) => queueMicrotask(resolve));
    return { engine, sent, asked, settle };
  }

  it('asks back the jobs that wait behind running ones, the last sent first, as many as CPUs are idle, and requeues only those dropped', async () => {
    const { engine, sent, asked, settle } = stealing();
    engine.addNode('a:1', 'a', 2, 'c');
    for (let uid = 1; uid <= 4; uid++) engine.submit(job(uid));
    await settle();
    expect(sent.map(([, uid]) => uid)).toEqual([1, 2, 3, 4]);
    engine.jobStarted('a:1', 1);
    engine.jobStarted('a:1', 2);
    engine.addNode('b:1', 'b', 2, 'c');
    await settle();
    expect(asked).toEqual([['a:1', [4, 3]]]);
    // One request at a time: another pass asks nothing more.
    engine.setNodeCpus('b:1', 2);
    await settle();
    expect(asked).toHaveLength(1);
    // Job 3 started meanwhile: only 4 comes back; the caller queues it again and it goes to b.
    const back = engine.reclaimed('a:1', [4, 3], [4]);
    expect(back.map((j) => j.uid)).toEqual([4]);
    for (const j of back) engine.submit(j);
    await settle();
    expect(sent.at(-1)).toEqual(['b:1', 4]);
    expect(engine.runningOn('a:1').map((j) => j.uid)).toEqual([1, 2, 3]);
    // Job 3 is known to stay on a (it started): it is never asked for again.
    await settle();
    expect(asked).toHaveLength(1);
  });

  it('never asks a node for jobs within its CPUs, pinned jobs, or jobs the scheduler will not move', async () => {
    const { engine, sent, asked, settle } = stealing();
    engine.addNode('a:1', 'a', 2, 'c');
    engine.submit(job(1));
    engine.submit(job(2, { pinnedHost: 'a:1' }));
    engine.submit(job(99));
    await settle();
    expect(sent).toHaveLength(3);
    engine.addNode('b:1', 'b', 4, 'c');
    await settle();
    // 3 jobs out on 2 CPUs: one of them waits. The pinned one (2) and the one not movable (99) are
    // never asked for; the other (1) is, the node deciding whether it started.
    expect(asked).toEqual([['a:1', [1]]]);
    engine.reclaimed('a:1', [1], []);
    await settle();
    expect(asked).toHaveLength(1);
  });

  it('asks nothing with one node, or when the idle node does not serve the computation', async () => {
    const { engine, asked, settle } = stealing();
    engine.addNode('a:1', 'a', 1, 'c');
    for (let uid = 1; uid <= 2; uid++) engine.submit(job(uid));
    await settle();
    expect(asked).toEqual([]);
    engine.addNode('b:1', 'b', 2, 'other');
    await settle();
    expect(asked).toEqual([]);
  });

  it('forgets a job asked back that ends before the answer', async () => {
    const { engine, asked, settle } = stealing();
    engine.addNode('a:1', 'a', 1, 'c');
    for (let uid = 1; uid <= 2; uid++) engine.submit(job(uid));
    await settle();
    engine.addNode('b:1', 'b', 1, 'c');
    await settle();
    expect(asked).toEqual([['a:1', [2]]]);
    expect(engine.jobDone('a:1', 2)?.uid).toBe(2);
    expect(engine.reclaimed('a:1', [2], [2])).toEqual([]);
    expect(engine.runningOn('a:1').map((j) => j.uid)).toEqual([1]);
  });
});
