import { describe, expect, it } from 'vitest';
import { ExpiringTable } from './expiring-table.js';

describe('ExpiringTable', () => {
  it('forgets an entry its time after it was last set, and setting it again renews it', () => {
    let now = 1000;
    const table = new ExpiringTable<string>(100, 10, () => now);
    table.set('a', 'first');
    table.set('b', 'second');
    now += 60;
    table.set('a', 'renewed');
    now += 50; // b is 110 ms old, a 50 ms
    expect(table.get('b')).toBeUndefined();
    expect(table.get('a')).toBe('renewed');
    expect([...table.live()]).toEqual([['a', 'renewed', 50]]);
    now += 50;
    expect(table.size).toBe(0);
  });

  it('keeps at most its capacity: one more forgets the one set longest ago', () => {
    const table = new ExpiringTable<number>(1000, 2, () => 0);
    table.set('a', 1);
    table.set('b', 2);
    table.set('a', 3);
    table.set('c', 4);
    expect([...table.live()].map(([key]) => key)).toEqual(['a', 'c']);
  });
});
