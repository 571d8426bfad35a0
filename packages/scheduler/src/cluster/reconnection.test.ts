import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RECONNECT_MAX_DELAY_MS, Reconnection, reconnectDelay } from './reconnection.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});

afterEach(() => {
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
});

/** A Reconnection whose attempts the test decides, recording what happens. */
function reconnection(deadlineInMs: number, attempt: () => Promise<void>) {
  const record = { attempts: [] as number[], failed: 0, gaveUp: [] as Array<Error | undefined>, abandoned: 0 };
  const start = Date.now();
  const running = new Reconnection({
    deadline: start + deadlineInMs,
    attempt: () => {
      record.attempts.push(Date.now() - start);
      return attempt();
    },
    failed: () => record.failed++,
    gaveUp: (error) => record.gaveUp.push(error),
    abandon: () => record.abandoned++,
  });
  return { running, record };
}

describe('Reconnection', () => {
  it('waits 0.25 s, then twice as long each time, never more than 5 s', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 50, 10_000].map(reconnectDelay)).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000, 5000, 5000]);
    expect(Math.max(...Array.from({ length: 100 }, (_, attempt) => reconnectDelay(attempt)))).toBe(RECONNECT_MAX_DELAY_MS);
  });

  it('attempts on that schedule until the deadline, then gives up once with the last error', async () => {
    const { running, record } = reconnection(30_000, async () => {
      throw new Error('connect ECONNREFUSED');
    });
    await vi.advanceTimersByTimeAsync(120_000);
    expect(record.attempts).toEqual([250, 750, 1750, 3750, 7750, 12_750, 17_750, 22_750, 27_750]);
    expect(record.failed).toBe(9);
    expect(record.gaveUp.map((error) => error?.message)).toEqual(['connect ECONNREFUSED']);
    expect(await running.ended).toBe('gone');
  });

  it('ends at the first attempt that succeeds', async () => {
    let calls = 0;
    const { running, record } = reconnection(30_000, async () => {
      if (++calls < 3) throw new Error('not yet');
    });
    await vi.advanceTimersByTimeAsync(2000);
    expect(await running.ended).toBe('back');
    expect(record.attempts).toEqual([250, 750, 1750]);
    expect(record.gaveUp).toEqual([]);
  });

  it('abandons an attempt still in progress at the deadline', async () => {
    const { running, record } = reconnection(1000, () => new Promise<void>(() => undefined));
    await vi.advanceTimersByTimeAsync(1000);
    expect(await running.ended).toBe('gone');
    expect(record.abandoned).toBe(1);
    expect(record.gaveUp).toEqual([undefined]);
  });

  it('keeps the process alive only while active, and stops without a verdict', async () => {
    const { running, record } = reconnection(30_000, async () => {
      throw new Error('down');
    });
    const timers = () => vi.getTimerCount();
    expect(timers()).toBe(2);
    running.setActive(true);
    running.stop();
    expect(await running.ended).toBe('stopped');
    expect(record.gaveUp).toEqual([]);
  });
});
