import { describe, expectTypeOf, it } from 'vitest';
import { DispyJob, DispyNode, JobCluster } from '../src/index.js';

const add = (a: number, b: number): number => a + b;
const fetchName = async (id: string): Promise<{ id: string; name: string }> => ({ id, name: 'x' });

describe('JobCluster generics', () => {
  it('types submit arguments from the computation', () => {
    const cluster = new JobCluster(add);
    expectTypeOf(cluster.submit).parameters.toEqualTypeOf<[number, number]>();
    // @ts-expect-error a string is not a number
    cluster.submit('1', 2);
    // @ts-expect-error one argument missing
    cluster.submit(1);
    expectTypeOf(cluster.submitNode).parameters.toEqualTypeOf<[DispyNode | string, number, number]>();
    cluster.submitJob({ args: [1, 2], priority: 1 });
    // @ts-expect-error args must match the parameters
    cluster.submitJob({ args: [1] });
  });

  it("types a job's result from the computation's return type, awaited", () => {
    const sums = new JobCluster(add);
    expectTypeOf(sums.submit(1, 2)).toEqualTypeOf<DispyJob<number>>();
    expectTypeOf(sums.submit(1, 2).wait()).toEqualTypeOf<Promise<number | undefined>>();
    const names = new JobCluster(fetchName);
    expectTypeOf(names.submit('a').wait()).toEqualTypeOf<Promise<{ id: string; name: string } | undefined>>();
    expectTypeOf(names.submit('a').result).toEqualTypeOf<{ id: string; name: string } | undefined>();
  });

  it('takes a typed job wherever a DispyJob is expected, and readonly node lists', () => {
    const cluster = new JobCluster(add, { nodes: ['127.0.0.1', '127.0.0.2'] as const });
    const job: DispyJob<number> = cluster.submit(1, 2);
    expectTypeOf(cluster.cancel).toBeCallableWith(job);
    const anyJob: DispyJob = job;
    expectTypeOf(anyJob.result).toEqualTypeOf<unknown>();
  });

  it("types callbacks with the job's result type", () => {
    new JobCluster(add, {
      callback: (job) => {
        expectTypeOf(job).toEqualTypeOf<DispyJob<number>>();
      },
      clusterStatus: (status, node, job) => {
        expectTypeOf(status).toEqualTypeOf<number>();
        expectTypeOf(node).toEqualTypeOf<DispyNode | undefined>();
        expectTypeOf(job).toEqualTypeOf<DispyJob<number> | undefined>();
      },
    });
  });

  it('takes string arguments for a program', () => {
    const program = new JobCluster('/bin/echo');
    expectTypeOf(program.submit).toBeCallableWith('a', 'b');
  });
});
