import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ComputationError, DispyError, JobCluster, NodeAllocate, OptionError, UnsendableValueError } from '../src/index.js';

const quiet = { nodes: ['127.0.3.1'], nodePort: 9, ipAddr: '127.0.0.1', port: 0, loglevel: 'silent' } as const;

describe('JobCluster options', () => {
  it('names the wrong option, the value and what is accepted', () => {
    expect(() => new JobCluster((n: number) => n, { nodePort: 'abc' as unknown as number })).toThrow(
      'JobCluster: option "nodePort": must be an integer 1..65535, got "abc"',
    );
    expect(() => new JobCluster((n: number) => n, { loglevel: 'loud' as 'warn' })).toThrow(
      /option "loglevel": must be one of debug, info, warn, error, silent, got "loud"/,
    );
    expect(() => new JobCluster((n: number) => n, { pulseInterval: 0 })).toThrow(
      /option "pulseInterval": must be a number of seconds 1..600, got 0/,
    );
    expect(() => new JobCluster((n: number) => n, { nodes: [42 as unknown as string] })).toThrow(/option "nodes/);
    expect(() => new JobCluster((n: number) => n, { maxRetries: 1.5 })).toThrow(/option "maxRetries": must be an integer 0..1000, got 1.5/);
    expect(() => new JobCluster((n: number) => n, { maxRetries: -1 })).toThrow(/option "maxRetries": must be an integer 0..1000, got -1/);
  });

  it('retries the jobs of dead nodes three times by default (reentrant)', async () => {
    const cluster = new JobCluster((n: number) => n, quiet);
    expect(cluster.options.maxRetries).toBe(3);
    await cluster.close();
  });

  it("names this project's way for dispy's options that have another name or are not needed", () => {
    const messageOf = (options: Record<string, unknown>) => {
      try {
        new JobCluster((x: number) => x, options);
      } catch (error) {
        return (error as Error).message;
      }
      return 'accepted';
    };
    expect(messageOf({ host: '127.0.0.1' })).toBe(
      'JobCluster: unknown option "host": dispy\'s "host" (the older name of ip_addr) is "ipAddr" here',
    );
    expect(messageOf({ job_status: () => undefined })).toContain('dispy\'s "job_status" is "callback" here');
    expect(messageOf({ poll_interval: 5 })).toContain('not needed here: results are pushed');
    expect(messageOf({ cluster_status: () => undefined })).toBe(
      'JobCluster: unknown option "cluster_status"; did you mean "clusterStatus"?',
    );
  });

  it('suggests the camelCase spelling of an unknown option', () => {
    const error = (() => {
      try {
        new JobCluster((n: number) => n, { ip_addr: '127.0.0.1' } as never);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(OptionError);
    expect(DispyError.isInstance(error)).toBe(true);
    expect((error as OptionError).code).toBe('DISPY_ERR_OPTION');
    expect((error as Error).message).toBe('JobCluster: unknown option "ip_addr"; did you mean "ipAddr"?');
    expect(() => new JobCluster((n: number) => n, { nodeport: 1 } as never)).toThrow(/did you mean "nodePort"/);
  });

  it('says what cleanup takes, and refuses function-only options for a program', () => {
    expect(() => new JobCluster((n: number) => n, { ...quiet, cleanup: 'x' as never })).toThrow(
      'JobCluster: option "cleanup": must be true, false or a function, got "x"',
    );
    const program = fileURLToPath(new URL('./fixtures/depends/count-args.sh', import.meta.url));
    expect(() => new JobCluster(program, { ...quiet, setup: () => 0 })).toThrow(/a program computation takes only files in depends/);
    expect(() => new JobCluster('/no/such/program', quiet)).toThrow('program "/no/such/program" does not exist');
  });

  it('takes a path or false for recoverFile, and nothing else', () => {
    expect(() => new JobCluster((n: number) => n, { ...quiet, recoverFile: 42 as never })).toThrow(/option "recoverFile"/);
  });

  it('checks the TLS options and files before anything is sent', () => {
    expect(() => new JobCluster((n: number) => n, { ...quiet, keyfile: 'key.pem' })).toThrow(
      'JobCluster: option "keyfile" needs "certfile" (the certificate of that key)',
    );
    expect(() => new JobCluster((n: number) => n, { ...quiet, cafile: '/no/such/ca.pem' })).toThrow(
      /^JobCluster: option "cafile": \/no\/such\/ca\.pem cannot be read: ENOENT/,
    );
    expect(() => new JobCluster((n: number) => n, { ...quiet, certFingerprint: 'AB:CD' })).toThrow(
      'JobCluster: option "certFingerprint": must be a SHA-256 fingerprint (64 hex digits, colons allowed), got "AB:CD"',
    );
    const notPem = fileURLToPath(new URL('./fixtures/depends/count-args.sh', import.meta.url));
    expect(() => new JobCluster((n: number) => n, { ...quiet, cafile: notPem })).toThrow(
      /^JobCluster: option "cafile": .*count-args\.sh holds no PEM certificate/,
    );
  });
});

describe('shipping the computation', () => {
  it('refuses a computation that captures an outer variable before anything is sent', async () => {
    const rate = 1.5;
    const sockets = () => process.getActiveResourcesInfo().filter((kind) => /TCP|UDP/.test(kind)).length;
    const before = sockets();
    expect(() => new JobCluster((n: number) => n * rate, quiet)).toThrow(ComputationError);
    expect(() => new JobCluster((n: number) => n * rate, quiet)).toThrow(/`rate` is captured from the outer scope/);
    // A cluster opens its discovery socket within one turn of the event loop; these threw
    // before starting anything, so no socket is open and no ping could leave.
    await new Promise((resolve) => setImmediate(resolve));
    expect(sockets()).toBe(before);
  });

  it('refuses method shorthand, bound and native functions with the cause', () => {
    const holder = {
      compute(n: number) {
        return n;
      },
    };
    expect(() => new JobCluster(holder.compute, quiet)).toThrow(/method shorthand/);
    expect(() => new JobCluster(((n: number) => n).bind(null), quiet)).toThrow(/bound function/);
    expect(() => new JobCluster(Math.sqrt, quiet)).toThrow(/native function/);
  });
});

describe('submitting', () => {
  it('names the argument that cannot be sent', async () => {
    const cluster = new JobCluster((a: unknown, b: unknown) => [a, b], quiet);
    try {
      expect(() => cluster.submit(1, { callback: () => 1 })).toThrow(UnsendableValueError);
      expect(() => cluster.submit(1, { callback: () => 1 })).toThrow(
        'argument 2.callback cannot be sent: it is a function (function callback)',
      );
      class Point {
        constructor(readonly x: number) {}
      }
      expect(() => cluster.submit(new Point(1), 2)).toThrow(/argument 1 cannot be sent: it is an instance of class Point/);
      expect(cluster.status().jobsPending).toBe(0);
    } finally {
      await cluster.close();
    }
  });

  it('refuses new jobs once closed', async () => {
    const cluster = new JobCluster((n: number) => n, quiet);
    await cluster.close();
    expect(() => cluster.submit(1)).toThrow(/is closed/);
  });
});

describe('NodeAllocate', () => {
  it('matches wildcards anchored, unlike dispy', () => {
    const exact = new NodeAllocate('127.0.81.1');
    expect(exact.allocate(null, '127.0.81.1', 'a', 4)).toBe(4);
    expect(exact.allocate(null, '127.0.81.10', 'a', 4)).toBe(0);
    const subnet = new NodeAllocate('127.0.81.*', { cpus: -1 });
    expect(subnet.allocate(null, '127.0.81.77', 'a', 4)).toBe(3);
    expect(subnet.allocate(null, '127.0.18.7', 'a', 4)).toBe(0);
    expect(new NodeAllocate('*', { cpus: 2 }).allocate(null, '127.1.2.3', 'a', 8)).toBe(2);
  });
});
