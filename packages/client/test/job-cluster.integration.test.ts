import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { DispyJob, DispyNode, JobCluster, NodeAllocate } from '../src/index.js';
import { freePort, startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';
import { clusterMaker } from './cluster-on.js';

const clusters: JobCluster[] = [];

const clusterOn = clusterMaker(clusters);

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 5 })));
  await stopAllNodes();
});

describe('JobCluster with real dispynode processes', () => {
  it('runs jobs and fills in every job field', async () => {
    const node = await startNode({ host: '127.0.1.2' });
    const cluster = clusterOn((a: number, b: number) => a * b, [node]);
    const job = cluster.submit(6, 7);
    job.id = 'six-times-seven';
    expect(job.status).toBe(DispyJob.Created);
    expect(await job.wait()).toBe(42);
    expect(job.status).toBe(DispyJob.Finished);
    expect(job.result).toBe(42);
    expect(job.id).toBe('six-times-seven');
    expect(job.ipAddr).toBe('127.0.1.2');
    expect(job.exception).toBeUndefined();
    expect(job.submitTime).toBeLessThanOrEqual(job.startTime!);
    expect(job.startTime).toBeLessThanOrEqual(job.endTime!);
    const status = cluster.status();
    expect(status.jobsPending).toBe(0);
    expect(status.nodes).toHaveLength(1);
    expect(status.nodes[0]!.jobsDone).toBe(1);
    expect(status.nodes[0]!.cpus).toBe(2);
  });

  it('captures stdout and stderr per job without mixing jobs', async () => {
    const node = await startNode({ host: '127.0.1.3' });
    const cluster = clusterOn(
      (n: number) => {
        console.log(`out ${n}`);
        console.error(`err ${n}`);
        process.stdout.write(`raw ${n}\n`);
        return n;
      },
      [node],
    );
    const jobs = Array.from({ length: 20 }, (_, i) => cluster.submit(i));
    await cluster.wait();
    jobs.forEach((job, i) => {
      expect(job.stdout).toBe(`out ${i}\nraw ${i}\n`);
      expect(job.stderr).toBe(`err ${i}\n`);
    });
  });

  it('ends a job that throws as Terminated with the stack trace', async () => {
    const node = await startNode({ host: '127.0.1.4' });
    const cluster = clusterOn(
      function failing(n: number) {
        if (n > 1) throw new RangeError(`n too large: ${n}`);
        return n;
      },
      [node],
    );
    const bad = cluster.submit(5);
    const good = cluster.submit(1);
    expect(await bad.wait()).toBeUndefined();
    expect(bad.status).toBe(DispyJob.Terminated);
    expect(bad.result).toBeUndefined();
    expect(bad.exception).toMatch(/^RangeError: n too large: 5\n\s+at failing/);
    expect(await good.wait()).toBe(1);
  });

  it('ends only its own job when a worker exits mid-job, and replaces the worker', async () => {
    const node = await startNode({ host: '127.0.1.5', cpus: 1 });
    const cluster = clusterOn(
      (code: number) => {
        if (code > 0) process.exit(code);
        return process.pid;
      },
      [node],
    );
    const before = await cluster.submit(0).wait();
    const exiting = cluster.submit(3);
    await exiting.wait();
    expect(exiting.status).toBe(DispyJob.Terminated);
    expect(exiting.exception).toMatch(/worker process running this job exited \(exit code 3\)/);
    const after = await cluster.submit(0).wait();
    expect(after).toEqual(expect.any(Number));
    expect(after).not.toBe(before);
  });

  it('ends a job whose callback throws later, and runs the jobs queued behind it elsewhere', async () => {
    const node = await startNode({ host: '127.0.1.17', cpus: 1 });
    const cluster = clusterOn(
      async (explode: boolean) => {
        if (explode)
          setTimeout(() => {
            throw new Error('thrown from a timer');
          }, 0);
        await new Promise((resolve) => setTimeout(resolve, 50));
        return 'calm';
      },
      [node],
    );
    await cluster.submit(false).wait(); // learn the job length: later jobs are pipelined
    const jobs = [cluster.submit(true), cluster.submit(false), cluster.submit(false)];
    await cluster.wait();
    expect(jobs[0]!.status).toBe(DispyJob.Terminated);
    expect(jobs[0]!.exception).toMatch(/thrown from a timer/);
    expect(jobs.slice(1).map((job) => [job.status, job.result])).toEqual([
      [DispyJob.Finished, 'calm'],
      [DispyJob.Finished, 'calm'],
    ]);
  });

  it('refuses arguments at submit, and results on the node, larger than one message', async () => {
    const node = await startNode({ host: '127.0.1.18', cpus: 1 });
    const cluster = clusterOn((data: Uint8Array | number) => (typeof data === 'number' ? new Uint8Array(data) : data.length), [node]);
    expect(() => cluster.submit(new Uint8Array(65 * 1024 * 1024))).toThrow(
      /the argument list cannot be sent: it encodes to \d+ bytes, over the \d+-byte limit/,
    );
    expect(await cluster.submit(new Uint8Array(1024)).wait()).toBe(1024);
    const huge = cluster.submit(65 * 1024 * 1024);
    await huge.wait();
    expect(huge.status).toBe(DispyJob.Terminated);
    expect(huge.exception).toMatch(
      /the result encodes to \d+ bytes, over the \d+-byte limit of one message; write it to a file and send it with dispySendFile/,
    );
    expect(await cluster.submit(new Uint8Array(10)).wait()).toBe(10);
  });

  it('awaits async computations', async () => {
    const node = await startNode({ host: '127.0.1.6' });
    const cluster = clusterOn(
      async (text: string) => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const { createHash } = await import('node:crypto');
        return createHash('sha256').update(text).digest('hex').slice(0, 8);
      },
      [node],
    );
    const expected = createHash('sha256').update('dispy').digest('hex').slice(0, 8);
    expect(await cluster.submit('dispy').wait()).toBe(expected);
  });

  it("resolves require() and import() to Node's built-ins and the node's installed packages", async () => {
    const node = await startNode({ host: '127.0.1.16' });
    const cluster = clusterOn(
      async (text: string) => {
        const { z } = require('zod'); // a dependency of @dispy/node, not of this test's computation
        const { z: imported } = await import('zod');
        const { createHash } = require('node:crypto');
        return {
          parsed: z.string().parse(text),
          imported: imported.number().parse(3),
          hash: createHash('md5').update(text).digest('hex').length,
        };
      },
      [node],
    );
    expect(await cluster.submit('abc').wait()).toEqual({ parsed: 'abc', imported: 3, hash: 32 });
  });

  it('carries structured values both ways', async () => {
    const node = await startNode({ host: '127.0.1.7' });
    const cluster = clusterOn(
      (value: { when: Date; tags: Set<string>; big: bigint }) => ({
        year: value.when.getUTCFullYear(),
        tags: [...value.tags].sort(),
        next: value.big + 1n,
        map: new Map([['k', new Uint8Array([1, 2])]]),
      }),
      [node],
    );
    const result = await cluster.submit({ when: new Date(Date.UTC(2024, 1, 1)), tags: new Set(['b', 'a']), big: 2n ** 70n }).wait();
    expect(result).toEqual({ year: 2024, tags: ['a', 'b'], next: 2n ** 70n + 1n, map: new Map([['k', new Uint8Array([1, 2])]]) });
  });

  it('carries megabyte arguments intact to their own jobs, as they were when submitted', async () => {
    const node = await startNode({ host: '127.0.1.7' });
    const cluster = clusterOn(
      (data: Uint8Array, label: string) => {
        const { createHash } = require('node:crypto');
        return `${label}:${data.length}:${createHash('sha256').update(data).digest('hex')}`;
      },
      [node],
    );
    const sha = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
    // One buffer, refilled after each submit: every job must see what it held at its submit.
    const buffer = new Uint8Array(3 * 1024 * 1024 + 17);
    const expected: string[] = [];
    const jobs = Array.from({ length: 12 }, (_, i) => {
      for (let j = 0; j < buffer.length; j += 4096) buffer[j] = (i * 7 + j) & 0xff;
      expected.push(`job ${i}:${buffer.length}:${sha(buffer)}`);
      return cluster.submit(buffer, `job ${i}`);
    });
    expect(await Promise.all(jobs.map((job) => job.wait()))).toEqual(expected);
  });

  it('shares the load between two dispynode processes', async () => {
    const [a, b] = await Promise.all([startNode({ host: '127.0.1.8', cpus: 1 }), startNode({ host: '127.0.1.9', cpus: 1 })]);
    const cluster = new JobCluster(
      async (ms: number) => {
        await new Promise((resolve) => setTimeout(resolve, ms));
        return ms;
      },
      {
        nodes: [new NodeAllocate(a.host, { port: a.port }), new NodeAllocate(b.host, { port: b.port })],
        ipAddr: '127.0.0.1',
        port: 0,
        loglevel: 'silent',
      },
    );
    clusters.push(cluster);
    const jobs = Array.from({ length: 20 }, () => cluster.submit(50));
    await cluster.wait();
    const used = new Set(jobs.map((job) => job.ipAddr));
    expect(used).toEqual(new Set([a.host, b.host]));
    expect(jobs.every((job) => job.status === DispyJob.Finished)).toBe(true);
    const done = cluster.status().nodes.map((node) => node.jobsDone);
    expect(done.reduce((x, y) => x + y, 0)).toBe(20);
    expect(Math.min(...done)).toBeGreaterThanOrEqual(5);
  });

  it('runs jobs submitted before any node has started', async () => {
    const port = await freePort('127.0.1.10');
    const cluster = new JobCluster((n: number) => n + 1, {
      nodes: ['127.0.1.10'],
      nodePort: port,
      ipAddr: '127.0.0.1',
      port: 0,
      loglevel: 'silent',
    });
    clusters.push(cluster);
    const jobs = Array.from({ length: 5 }, (_, i) => cluster.submit(i));
    expect(await cluster.wait(1)).toBe(false);
    expect(jobs.every((job) => job.status === DispyJob.Created)).toBe(true);
    await startNode({ host: '127.0.1.10', port });
    expect(await Promise.all(jobs.map((job) => job.wait()))).toEqual([1, 2, 3, 4, 5]);
  });

  it('reports nodes and jobs to clusterStatus and results to callback', async () => {
    const node = await startNode({ host: '127.0.1.11' });
    const events: string[] = [];
    const results: unknown[] = [];
    const cluster = clusterOn((n: number) => n * 10, [node], {
      clusterStatus: (status: number, dispyNode: DispyNode | undefined, job: DispyJob | undefined) => {
        events.push(job ? `job ${String(job.id)} ${DispyJob.statusName(status)}` : `node ${dispyNode?.ipAddr} ${status}`);
      },
      callback: (job: DispyJob) => results.push(job.result),
    });
    const job = cluster.submit(4);
    job.id = 'x';
    await cluster.wait();
    expect(results).toEqual([40]);
    // Created is reported at submit, before the program could set job.id.
    expect(events).toEqual(['job undefined Created', `node 127.0.1.11 ${DispyNode.Initialized}`, 'job x Running', 'job x Finished']);
  });

  it('cancels a queued job and a running one; the node then serves the next job', async () => {
    const node = await startNode({ host: '127.0.1.12', cpus: 1 });
    let started!: () => void;
    const spinningStarted = new Promise<void>((resolve) => (started = resolve));
    const cluster = clusterOn(
      (spin: boolean) => {
        if (spin) for (;;);
        return 'done';
      },
      [node],
      {
        clusterStatus: (status: number, _node: unknown, job: DispyJob | undefined) => {
          if (status === DispyJob.Running && job === spinning) started();
        },
      },
    );
    const spinning = cluster.submit(true);
    const queued = cluster.submit(false);
    await spinningStarted;
    expect(await cluster.cancel(queued)).toBe(0);
    expect(await cluster.cancel(spinning)).toBe(0);
    await spinning.wait();
    expect(spinning.status).toBe(DispyJob.Cancelled);
    expect(queued.status).toBe(DispyJob.Cancelled);
    expect(await cluster.cancel(spinning)).toBe(-1);
    expect(await cluster.submit(false).wait()).toBe('done');
  });

  it('runs two clusters with different computations and options in one program', async () => {
    const [plain, guarded] = await Promise.all([
      startNode({ host: '127.0.1.13' }),
      startNode({ host: '127.0.1.14', secret: 'open sesame' }),
    ]);
    const adder = clusterOn((n: number) => n + 1, [plain]);
    const shouter = clusterOn(async (text: string) => text.toUpperCase(), [guarded], { secret: 'open sesame' });
    const [sum, shout] = await Promise.all([adder.submit(1).wait(), shouter.submit('hi').wait()]);
    expect(sum).toBe(2);
    expect(shout).toBe('HI');
    expect(adder.status().nodes.map((n) => n.ipAddr)).toEqual(['127.0.1.13']);
    expect(shouter.status().nodes.map((n) => n.ipAddr)).toEqual(['127.0.1.14']);
  });

  it('prints and returns the per-node stats table, with job time (start to end) apart from CPU time', async () => {
    const node = await startNode({ host: '127.0.1.15' });
    // Jobs that wait 200 ms and use next to no CPU: their job time counts, as in dispy.
    const cluster = clusterOn((n: number) => new Promise((resolve) => setTimeout(() => resolve(n), 200)), [node]);
    await Promise.all(Array.from({ length: 6 }, (_, i) => cluster.submit(i).wait()));
    const printed: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = (chunk: string) => printed.push(String(chunk)) > 0;
    let stats;
    try {
      stats = cluster.stats();
    } finally {
      process.stdout.write = write;
    }
    expect(stats.nodes).toEqual([expect.objectContaining({ ipAddr: '127.0.1.15', cpus: 2, jobsDone: 6 })]);
    expect(stats.nodes[0]!.tx).toBeGreaterThan(0);
    expect(stats.nodes[0]!.jobTime).toBeGreaterThanOrEqual(6 * 0.2);
    expect(stats.nodes[0]!.secPerJob).toBeGreaterThanOrEqual(0.2);
    expect(stats.nodes[0]!.cpuTime).toBeLessThan(stats.nodes[0]!.jobTime);
    expect(stats.totalJobTime).toBe(stats.nodes[0]!.jobTime);
    expect(stats.speedup).toBeCloseTo(stats.totalJobTime / stats.wallTime, 2);
    expect(printed.join('')).toMatch(/127\.0\.1\.15 \(.+\) \|\s+2 \|\s+6 \|\s+\d+\.\d{3} \|\s+\d+\.\d{3} \|\s+\d+\.\d{3} \|/);
    expect(printed.join('')).toMatch(/Total job time: \d+\.\d{3} sec \(CPU time: \d+\.\d{3} sec\), wall time: /);
  });
});
