import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DispyError, ErrorCode } from '@dispy/protocol';
import { ReplyCount } from './reply-count.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});

afterEach(() => {
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
});

describe('ReplyCount', () => {
  it('counts the kept replies, also those that came before the answer, but not those of held jobs or twice', async () => {
    const count = new ReplyCount('node n', 60_000);
    count.add(1);
    let done = false;
    const until = count.until(new Set([7]), 3).then(() => (done = true));
    count.add(7); // a held job that ended meanwhile
    count.add(1); // the same reply again
    count.add(2);
    await Promise.resolve();
    expect(done).toBe(false);
    count.add(3);
    await until;
    expect(done).toBe(true);
  });

  it('gives up when the node goes silent before it resent all it said it kept, however long the resending takes', async () => {
    const count = new ReplyCount('node n', 60_000);
    const until = count.until(new Set(), 3).then(
      () => undefined,
      (error: unknown) => error,
    );
    await vi.advanceTimersByTimeAsync(50_000);
    count.add(1);
    await vi.advanceTimersByTimeAsync(50_000);
    count.add(2);
    await vi.advanceTimersByTimeAsync(60_000);
    const error = await until;
    expect(DispyError.isInstance(error)).toBe(true);
    expect((error as DispyError).code).toBe(ErrorCode.NO_ANSWER);
    expect((error as Error).message).toBe('node n said it kept 3 replies but resent 2 of them, then nothing for 60 s');
  });

  it('ends a wait with the error of fail (its connection closed)', async () => {
    const count = new ReplyCount('node n', 60_000);
    const until = count.until(new Set(), 1);
    count.fail(new Error('closed'));
    await expect(until).rejects.toThrow('closed');
  });
});
