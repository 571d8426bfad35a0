import { describe, expect, it } from 'vitest';
import { CpuSlots, type CpuTenant } from './cpu-slots.js';

/** A tenant with `queued` jobs that starts one per slot and records each start in `log`. */
function tenant(name: string, queued: number, log: string[], slots: CpuSlots) {
  const self = {
    queued,
    running: 0,
    grant(): boolean {
      if (self.queued === 0) return false;
      self.queued--;
      self.running++;
      log.push(name);
      return true;
    },
    /** One of its jobs ends: the slot goes back, and it asks again while jobs wait. */
    finish(): void {
      self.running--;
      slots.release(self);
      if (self.queued > 0) slots.want(self);
    },
  } satisfies CpuTenant & Record<string, unknown>;
  return self;
}

describe('CpuSlots', () => {
  it('never lets more than its capacity be held, whoever holds them', () => {
    const slots = new CpuSlots(2);
    const log: string[] = [];
    const a = tenant('a', 10, log, slots);
    const b = tenant('b', 10, log, slots);
    slots.want(a);
    slots.want(b);
    expect(slots.inUse).toBe(2);
    expect(a.running + b.running).toBe(2);
    a.finish();
    expect(slots.inUse).toBe(2);
  });

  it('goes round-robin among tenants with work: 100,000 queued jobs do not starve 10', () => {
    const slots = new CpuSlots(2);
    const log: string[] = [];
    const big = tenant('big', 100_000, log, slots);
    slots.want(big);
    expect(log).toEqual(['big', 'big']);
    const small = tenant('small', 10, log, slots);
    slots.want(small);
    // Each slot freed goes to the next in line: the small one every other time.
    for (let i = 0; i < 20; i++) (i % 2 === 0 ? big : small.running > 0 ? small : big).finish();
    const after = log.slice(2);
    expect(after.filter((name) => name === 'small').length).toBe(10);
    expect(after.slice(0, 20).filter((name) => name === 'big').length).toBe(10);
    expect(small.queued).toBe(0);
  });

  it('gives a slot to a tenant that wants one again only after the others in line had their turn', () => {
    const slots = new CpuSlots(1);
    const log: string[] = [];
    const a = tenant('a', 3, log, slots);
    const b = tenant('b', 3, log, slots);
    const c = tenant('c', 3, log, slots);
    slots.want(a);
    slots.want(b);
    slots.want(c);
    for (let i = 0; i < 8; i++) {
      const holder = [a, b, c].find((t) => t.running > 0)!;
      holder.finish();
    }
    expect(log).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('skips a tenant with nothing to start, and frees the slots of one removed', () => {
    const slots = new CpuSlots(2);
    const log: string[] = [];
    const idle = tenant('idle', 0, log, slots);
    const busy = tenant('busy', 5, log, slots);
    slots.want(idle);
    slots.want(busy);
    expect(log).toEqual(['busy', 'busy']);
    expect(slots.waiting).toBe(1);
    const other = tenant('other', 5, log, slots);
    slots.want(other);
    expect(slots.heldBy(busy)).toBe(2);
    slots.remove(busy);
    expect(slots.heldBy(busy)).toBe(0);
    expect(log.slice(2)).toEqual(['other', 'other']);
    expect(slots.inUse).toBe(2);
  });

  it('follows a change of capacity: fewer slots are given back as work ends, more are granted at once', () => {
    const slots = new CpuSlots(2);
    const log: string[] = [];
    const a = tenant('a', 10, log, slots);
    slots.want(a);
    slots.setCapacity(1);
    a.finish();
    expect(slots.inUse).toBe(1);
    a.finish();
    expect(slots.inUse).toBe(1);
    slots.setCapacity(3);
    expect(slots.inUse).toBe(3);
    slots.setCapacity(0);
    a.finish();
    a.finish();
    a.finish();
    expect(slots.inUse).toBe(0);
  });
});
