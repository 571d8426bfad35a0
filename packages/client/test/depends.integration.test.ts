import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DispyJob, DispyNode, JobCluster, NodeAllocate } from '../src/index.js';
import { startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';
import { clusterMaker } from './cluster-on.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/depends/${name}`, import.meta.url));
const clusters: JobCluster[] = [];
const cleanups: Array<() => void> = [];

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close({ timeout: 5 })));
  for (const cleanup of cleanups.splice(0)) cleanup();
  await stopAllNodes();
});

const clusterOn = clusterMaker(clusters);

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
  length(): number {
    return Math.hypot(this.x, this.y);
  }
  scaled(by: number): Point {
    return new Point(this.x * by, this.y * by);
  }
}

describe('computations with their world', () => {
  it('runs setup in each worker to load a data file into a global that jobs read', async () => {
    const node = await startNode({ host: '127.0.9.2', cpus: 2 });
    function loadWords() {
      globalThis.words = require('node:fs').readFileSync('words.txt', 'utf8').trim().split('\n');
      return 0;
    }
    const cluster = clusterOn((i: number) => (globalThis as unknown as { words: string[] }).words[i], node, {
      depends: [fixture('words.txt')],
      setup: loadWords,
    });
    expect(await Promise.all([0, 1, 2].map((i) => cluster.submit(i).wait()))).toEqual(['alpha', 'beta', 'gamma']);
  });

  it('defines depends functions, classes and values as globals; instances keep their class both ways', async () => {
    const node = await startNode({ host: '127.0.9.3', cpus: 1 });
    function describePoint(p: Point) {
      return `(${p.x}, ${p.y})`;
    }
    const cluster = clusterOn(
      (p: Point) => {
        const bigger = p.scaled(factor);
        return { bigger, length: bigger.length(), text: describePoint(bigger), isPoint: bigger instanceof Point };
      },
      node,
      { depends: [Point, describePoint, { factor: 2 }] },
    );
    const result = await cluster.submit(new Point(3, 4)).wait();
    expect(result!.bigger).toBeInstanceOf(Point);
    expect(result!.bigger.length()).toBe(10);
    expect(result).toMatchObject({ length: 10, text: '(6, 8)', isPoint: true });
  });

  it('loads module files of depends with require() and import()', async () => {
    const node = await startNode({ host: '127.0.9.4', cpus: 1 });
    const cluster = clusterOn(
      async (text: string) => {
        const { shout } = require('./helper.cjs');
        // @ts-expect-error -- lib.mjs exists in the computation's directory on the node, not here
        const { double } = await import('./lib.mjs');
        return [shout(text), double(21)];
      },
      node,
      { depends: [fixture('helper.cjs'), fixture('lib.mjs')] },
    );
    expect(await cluster.submit('hi').wait()).toEqual(['HI!', 42]);
  });

  it('sends per-job depends with their job and removes them after it', async () => {
    const node = await startNode({ host: '127.0.9.5', cpus: 1 });
    const cluster = clusterOn(
      (name: string) => {
        const fs = require('node:fs');
        return fs.existsSync(name) ? fs.readFileSync(name, 'utf8').split('\n')[0] : 'gone';
      },
      node,
      { cleanup: false },
    );
    function unused() {
      return 0;
    }
    const withFile = cluster.submitJob({ args: ['words.txt'], depends: [fixture('words.txt'), unused] });
    expect(await withFile.wait()).toBe('alpha');
    expect(await cluster.submit('words.txt').wait()).toBe('gone');
    await cluster.close();
    // A job's file may not replace (and then remove) one of the cluster's own.
    const withDepends = clusterOn((name: string) => require('node:fs').readFileSync(name, 'utf8').length, node, {
      depends: [fixture('words.txt')],
    });
    const clash = withDepends.submitJob({ args: ['words.txt'], depends: [fixture('words.txt')] });
    await clash.wait();
    expect(clash.status).toBe(DispyJob.Terminated);
    expect(clash.exception).toMatch(/depends file words.txt has the name of a depends file of the cluster/);
    expect(await withDepends.submit('words.txt').wait()).toBe(17);
  });

  it('reports provisional results to the callback, in order, and lets it cancel the rest', async () => {
    const node = await startNode({ host: '127.0.9.6', cpus: 2 });
    const seen: Array<[number, unknown]> = [];
    const jobs: DispyJob[] = [];
    const cluster = clusterOn(
      async (target: number) => {
        for (let step = 1; step <= 5; step++) {
          await dispyProvisionalResult(step * target);
          await new Promise((resolve) => setTimeout(resolve, 30));
        }
        await new Promise((resolve) => setTimeout(resolve, target === 1 ? 0 : 30_000));
        return 'finished';
      },
      node,
      {
        callback: (job: DispyJob) => {
          seen.push([job.status, job.result]);
          // Good enough: stop every other job.
          if (job.status === DispyJob.Finished) for (const other of jobs) if (other !== job) void cluster.cancel(other);
        },
      },
    );
    jobs.push(cluster.submit(1), cluster.submit(100));
    await cluster.wait();
    expect(jobs[0]!.status).toBe(DispyJob.Finished);
    expect(jobs[1]!.status).toBe(DispyJob.Cancelled);
    const firstJob = seen.filter(([, result]) => typeof result === 'number' && result < 10);
    expect(firstJob).toEqual([1, 2, 3, 4, 5].map((n) => [DispyJob.ProvisionalResult, n]));
  });

  it('brings back a file a job generated with dispySendFile, under the same relative path', async () => {
    const node = await startNode({ host: '127.0.9.7', cpus: 1 });
    const outDir = mkdtempSync(path.join(os.tmpdir(), 'dispy-test-out-'));
    cleanups.push(() => rmSync(outDir, { recursive: true, force: true }));
    const relative = 'results/today';
    const cluster = clusterOn(
      async (dir: string, lines: number) => {
        const fs = require('node:fs');
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(`${dir}/report.txt`, Array.from({ length: lines }, (_, i) => `line ${i}`).join('\n'));
        const sent = await dispySendFile(`${dir}/report.txt`);
        let refused = '';
        try {
          await dispySendFile('../../../etc/passwd');
        } catch (error) {
          refused = (error as Error).message;
        }
        return { sent, refused };
      },
      node,
      { fileDir: outDir },
    );
    const result = await cluster.submit(relative, 1000).wait();
    expect(result).toEqual({ sent: 0, refused: expect.stringMatching(/dispySendFile: path .* must not contain "\.\."/) });
    const arrived = readFileSync(path.join(outDir, relative, 'report.txt'), 'utf8').split('\n');
    expect(arrived).toHaveLength(1000);
    expect(arrived[999]).toBe('line 999');
  });

  it('runs a shell script and a Node script as program computations', async () => {
    const node = await startNode({ host: '127.0.9.8', cpus: 2 });
    const shell = clusterOn(fixture('count-args.sh'), node);
    const ok = shell.submit('0', 'two');
    const failing = shell.submit('3');
    expect(await ok.wait()).toBe(0);
    expect(ok.stdout).toBe('args: 0 two\n');
    expect(ok.stderr).toBe('to stderr\n');
    expect(await failing.wait()).toBe(3);
    expect(failing.status).toBe(DispyJob.Finished);
    // Numbers and booleans become their text, as dispy's str() makes them; objects are refused.
    const numbers = shell.submit(0, 2.5, true, 10n);
    expect(await numbers.wait()).toBe(0);
    expect(numbers.stdout).toBe('args: 0 2.5 true 10\n');
    expect(() => shell.submit('0', { a: 1 })).toThrow(/argument 2 is object, which has no plain text form/);
    expect(() => shell.submit(null)).toThrow(/argument 1 is null/);
    await shell.close();

    // A bare name that is no file in the working directory is looked for in PATH, as a shell would.
    const savedPath = process.env.PATH;
    process.env.PATH = `${path.dirname(fixture('count-args.sh'))}:${savedPath}`;
    try {
      const found = clusterOn('count-args.sh', node);
      const job = found.submit(0, 'from', 'PATH');
      expect(await job.wait()).toBe(0);
      expect(job.stdout).toBe('args: 0 from PATH\n');
      expect(() => clusterOn('no-such-program-anywhere', node)).toThrow(
        'program "no-such-program-anywhere" does not exist in the working directory or in PATH',
      );
    } finally {
      process.env.PATH = savedPath;
    }

    const script = clusterOn(fixture('greet.mjs'), node);
    const hello = script.submit('dispy');
    const killed = script.submit('die');
    expect(await hello.wait()).toBe(0);
    expect(hello.stdout).toBe('hello dispy\n');
    await killed.wait();
    expect(killed.status).toBe(DispyJob.Terminated);
    expect(killed.exception).toMatch(/killed by SIGKILL/);
  });

  it('goes on without a node whose setup fails, reporting it', async () => {
    const [good, bad] = await Promise.all([startNode({ host: '127.0.9.9', cpus: 1 }), startNode({ host: '127.0.9.10', cpus: 1 })]);
    const statuses: Array<[number, string | undefined, string | undefined]> = [];
    function setup(fail: boolean) {
      if (fail) throw new Error('no data on this node');
      return 0;
    }
    const cluster = new JobCluster((n: number) => n + 1, {
      nodes: [
        new NodeAllocate(good.host, { port: good.port, setupArgs: [false] }),
        new NodeAllocate(bad.host, { port: bad.port, setupArgs: [true] }),
      ],
      setup,
      ipAddr: '127.0.0.1',
      port: 0,
      loglevel: 'silent',
      clusterStatus: (status: number, node: DispyNode | undefined) => {
        if (node) statuses.push([status, node.ipAddr, node.setupError]);
      },
    });
    clusters.push(cluster);
    const results = await Promise.all(Array.from({ length: 4 }, (_, i) => cluster.submit(i).wait()));
    expect(results).toEqual([1, 2, 3, 4]);
    expect(cluster.status().nodes.map((n) => n.ipAddr)).toEqual([good.host]);
    expect(statuses).toContainEqual([DispyNode.Initialized, good.host, undefined]);
    await vi.waitFor(() => expect(statuses).toContainEqual([DispyNode.Closed, bad.host, expect.stringContaining('no data on this node')]), {
      timeout: 10_000,
    });
    await bad.waitForLog(/setup of .* failed: the computation failed to load: Error: no data on this node/);
  });

  it('says once, naming each node and why, when no node can run the computation while jobs wait', async () => {
    const [one, two] = await Promise.all([startNode({ host: '127.0.9.13', cpus: 1 }), startNode({ host: '127.0.9.14', cpus: 1 })]);
    function setup() {
      throw new Error('no data on this node');
    }
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = (chunk: string | Uint8Array) => lines.push(String(chunk)) > 0;
    try {
      const cluster = new JobCluster((n: number) => n, {
        nodes: [new NodeAllocate(one.host, { port: one.port }), new NodeAllocate(two.host, { port: two.port })],
        setup,
        ipAddr: '127.0.0.1',
        port: 0,
        loglevel: 'warn',
      });
      clusters.push(cluster);
      const job = cluster.submit(1);
      await vi.waitFor(() => expect(lines.join('')).toContain('no node can run'), { timeout: 15_000 });
      const warning = lines.find((line) => line.includes('no node can run'))!;
      expect(warning).toMatch(/warn: no node can run \w+, and 1 job wait: /);
      expect(warning).toContain(
        `(${one.host}:${one.port}): setup of computation failed: the computation failed to load: Error: no data on this node`,
      );
      expect(warning).toContain(
        `(${two.host}:${two.port}): setup of computation failed: the computation failed to load: Error: no data on this node`,
      );
      expect(warning).toContain('The jobs wait for a node that can');
      expect(lines.filter((line) => line.includes('no node can run'))).toHaveLength(1);
      expect(job.status).toBe(DispyJob.Created);
    } finally {
      process.stderr.write = write;
    }
  });

  it('runs a cleanup function before removing files, and gives each node its own depends', async () => {
    const node = await startNode({ host: '127.0.9.12', cpus: 1 });
    function loadOwn() {
      (globalThis as Record<string, unknown>).own = require('node:fs').readFileSync('words.txt', 'utf8').split('\n')[1];
      return 0;
    }
    function leaveMark() {
      // The computation's directory is about to go; leave a mark beside it.
      require('node:fs').writeFileSync(`${dispy_job_path}/../cleaned-by-cleanup`, 'yes');
    }
    const cluster = new JobCluster(() => (globalThis as unknown as { own: string }).own, {
      nodes: [new NodeAllocate(node.host, { port: node.port, depends: [fixture('words.txt')] })],
      setup: loadOwn,
      cleanup: leaveMark,
      ipAddr: '127.0.0.1',
      port: 0,
      loglevel: 'silent',
    });
    expect(await cluster.submit().wait()).toBe('beta');
    await cluster.close();
    expect(readFileSync(path.join(node.destPathPrefix, 'cleaned-by-cleanup'), 'utf8')).toBe('yes');
    expect(readdirSync(node.destPathPrefix).filter((entry) => entry.startsWith('computation-'))).toEqual([]);
  });

  it('copies a file to a node with sendFile, and refuses dispySendFile over the node limit', async () => {
    const node = await startNode({ host: '127.0.9.13', cpus: 1, args: ['--max-file-size', '1k'] });
    const cluster = clusterOn(async (name: string, bytes: number) => {
      const fs = require('node:fs');
      if (bytes === 0) return fs.readFileSync(name, 'utf8').trim();
      fs.writeFileSync('out.bin', Buffer.alloc(bytes));
      try {
        return await dispySendFile('out.bin');
      } catch (error) {
        return (error as Error).message;
      }
    }, node);
    await cluster.submit('none', 0).wait(); // the node is set up once a job has run
    expect(await cluster.sendFile(fixture('words.txt'), node.host)).toBe(0);
    expect(await cluster.submit('words.txt', 0).wait()).toBe('alpha\nbeta\ngamma');
    expect(await cluster.submit('', 2048).wait()).toMatch(/out\.bin is 2048 bytes, over the node's limit of 1024 bytes/);
    expect(await cluster.sendFile(fixture('words.txt'), '127.9.9.9')).toBe(-1);
  });

  it('keeps files with cleanup: false and does not send an unchanged file again', async () => {
    const node = await startNode({ host: '127.0.9.11', cpus: 1 });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-kept-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const data = path.join(dir, 'data.bin');
    writeFileSync(data, Buffer.alloc(2 * 1024 * 1024, 7));
    const options = { depends: [data], cleanup: false, destPath: 'kept' };
    const sent = async () => {
      const cluster = clusterOn((n: number) => n, node, options);
      await cluster.submit(1).wait();
      const { tx } = cluster.status().nodes[0]!;
      await cluster.close();
      return tx;
    };
    expect(await sent()).toBeGreaterThan(2 * 1024 * 1024);
    const kept = path.join(node.destPathPrefix, 'kept', 'data.bin');
    expect(statSync(kept).size).toBe(2 * 1024 * 1024);
    expect(await sent()).toBeLessThan(64 * 1024);
    writeFileSync(data, Buffer.alloc(2 * 1024 * 1024, 8));
    expect(await sent()).toBeGreaterThan(2 * 1024 * 1024);
    expect(readFileSync(kept)[0]).toBe(8);
  });
});

declare global {
  var dispy_job_path: string;
  function dispyProvisionalResult(value: unknown): Promise<number>;
  function dispySendFile(path: string): Promise<number>;
  var words: string[];
}

const factor = 0; // shadowed by the depends value on the node; here only for the type checker
void factor;
