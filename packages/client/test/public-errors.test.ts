import { describe, expect, it } from 'vitest';
import { DispyError, JobCluster, NodeAllocate, OptionError } from '../src/index.js';
import { resolveClusterOptions } from '../src/cluster/options.js';

describe('public functions throw DispyErrors', () => {
  it('NodeAllocate refuses an empty host with an OptionError', () => {
    expect(() => new NodeAllocate('')).toThrow(OptionError);
    expect(() => new NodeAllocate(42 as unknown as string)).toThrow(/host must be a non-empty string, got 42/);
  });

  it('accepts logLevel as an alias of loglevel, and refuses the two when they differ', () => {
    expect(resolveClusterOptions({ logLevel: 'debug' }).loglevel).toBe('debug');
    expect(resolveClusterOptions({ loglevel: 'info', logLevel: 'info' }).loglevel).toBe('info');
    expect(resolveClusterOptions({}).loglevel).toBe('warn');
    expect(() => resolveClusterOptions({ loglevel: 'info', logLevel: 'error' })).toThrow(OptionError);
    expect(() => resolveClusterOptions({ logLevel: 'loud' })).toThrow(/option "logLevel": must be one of/);
  });

  it('JobCluster refuses a wrong option with an OptionError, a DispyError', () => {
    let error: unknown;
    try {
      new JobCluster((x: number) => x, { nodePort: -1 });
    } catch (caught) {
      error = caught;
    }
    expect(OptionError.isInstance(error)).toBe(true);
    expect(DispyError.isInstance(error)).toBe(true);
  });
});
