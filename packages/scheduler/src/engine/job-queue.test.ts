import { describe, expect, it } from 'vitest';
import { JobQueue } from './job-queue.js';

const job = (uid: number, priority = 0) => ({ uid, priority });

describe('JobQueue', () => {
  it('pops higher priorities first and keeps FIFO within a priority', () => {
    const queue = new JobQueue<ReturnType<typeof job>>();
    [job(1), job(2, 5), job(3), job(4, 5), job(5, -1), job(6)].forEach((j) => queue.push(j));
    const order: number[] = [];
    for (let next = queue.pop(); next; next = queue.pop()) order.push(next.uid);
    expect(order).toEqual([2, 4, 1, 3, 6, 5]);
  });

  it('skips removed jobs and counts only live ones', () => {
    const queue = new JobQueue<ReturnType<typeof job>>();
    [1, 2, 3].forEach((uid) => queue.push(job(uid)));
    queue.remove(1);
    expect(queue.size).toBe(2);
    expect(queue.peek()?.uid).toBe(2);
    expect([...queue.jobs()].map((j) => j.uid).sort()).toEqual([2, 3]);
    expect(queue.pop()?.uid).toBe(2);
    expect(queue.pop()?.uid).toBe(3);
    expect(queue.pop()).toBeUndefined();
    expect(queue.size).toBe(0);
  });

  it('holds 100,000 jobs and drains them in order', () => {
    const queue = new JobQueue<ReturnType<typeof job>>();
    for (let uid = 0; uid < 100_000; uid++) queue.push(job(uid, uid % 7));
    let previous = { uid: -1, priority: Infinity };
    let popped = 0;
    let outOfOrder = 0;
    for (let next = queue.pop(); next; next = queue.pop()) {
      if (!(next.priority < previous.priority || (next.priority === previous.priority && next.uid > previous.uid))) outOfOrder++;
      previous = next;
      popped++;
    }
    expect(popped).toBe(100_000);
    expect(outOfOrder).toBe(0);
  });
});
