import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { schedulerHarness } from './scheduler-harness.test-helper.js';
import type { NodeAllocator } from './types.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});

afterEach(() => {
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
});

const BAD = 'no-such-host.invalid';

function allocatorOf(host: string): NodeAllocator<'owner'> {
  return { host, isWildcard: false, resolved: new Set(), allocate: (_owner, _ip, _name, cpus) => cpus };
}

/** A harness whose resolver (a stub: no DNS query leaves this machine) refuses BAD until `fixed`. */
function harness() {
  const lookups: string[] = [];
  let fixed = false;
  const h = schedulerHarness({
    lookup: async (name) => {
      lookups.push(name);
      if (name === BAD && !fixed) throw new Error(`getaddrinfo ENOTFOUND ${name}`);
      if (name === BAD) return ['127.0.0.32'];
      throw new Error(`unexpected lookup of ${name}`);
    },
  });
  const added: string[] = [];
  const finder = h.scheduler['finder'];
  const addHost = finder.addHost.bind(finder);
  finder.addHost = (host: string, port?: number) => {
    added.push(host);
    addHost(host, port);
  };
  return { ...h, lookups, added, fix: () => (fixed = true) };
}

describe('host names of nodes', () => {
  it('one name that does not resolve affects only itself: warned once, resolved again with backoff, the good node runs the jobs', async () => {
    const { scheduler, spec, nodeUp, submit, reply, named, logs, lookups, added, fix } = harness();
    await scheduler.addComputation({ ...spec, allocators: [allocatorOf('127.0.0.31'), allocatorOf(BAD)] });
    const warnings = logs.filter(([level, message]) => level === 'warn' && message.includes(BAD));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]![1]).toMatch(/node no-such-host\.invalid does not resolve \(getaddrinfo ENOTFOUND .*\); the other nodes are used/);
    expect(added).toEqual(['127.0.0.31']);

    // The good node takes the computation and runs its job.
    const node = await nodeUp('127.0.0.31');
    const job = submit('good');
    const frame = await node.next('job');
    reply(node, Number(frame.job!.jobId));
    await vi.waitFor(() => expect(named('jobDone').map(([, done]) => done)).toEqual([job]));
    expect(named('jobFailed')).toEqual([]);

    // Once it resolves, its addresses are pinged as any node's.
    fix();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(added).toEqual(['127.0.0.31', '127.0.0.32']);
    expect(logs.some(([level, message]) => level === 'info' && message === `node ${BAD} resolves now, to 127.0.0.32`)).toBe(true);
    expect(logs.filter(([level, message]) => level === 'warn' && message.includes(BAD))).toHaveLength(1);
    const resolvedAfter = lookups.length;
    await vi.advanceTimersByTimeAsync(120_000);
    expect(lookups).toHaveLength(resolvedAfter);
    await scheduler.close();
  });

  it('resolves a name again with backoff (1 s, 2 s, 4 s...), each failure at debug, and stops when the scheduler closes', async () => {
    const { scheduler, spec, lookups, logs } = harness();
    await scheduler.addComputation({ ...spec, allocators: [allocatorOf(BAD)] });
    expect(lookups).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(lookups).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(lookups).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1_999);
    expect(lookups).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(lookups).toHaveLength(3);
    expect(logs.filter(([level, message]) => level === 'warn' && message.includes(BAD))).toHaveLength(1);
    expect(logs.some(([level, message]) => level === 'debug' && message.includes(`${BAD}: resolving again (attempt 3) failed`))).toBe(true);
    await scheduler.close();
    await vi.advanceTimersByTimeAsync(600_000);
    expect(lookups).toHaveLength(3);
  });

  it('stops resolving a name again when its computation closes', async () => {
    const { scheduler, spec, lookups } = harness();
    await scheduler.addComputation({ ...spec, allocators: [allocatorOf(BAD)] });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(lookups).toHaveLength(2);
    await scheduler.closeComputation(spec.computeId);
    await vi.advanceTimersByTimeAsync(600_000);
    expect(lookups).toHaveLength(2);
    await scheduler.close();
  });
});
