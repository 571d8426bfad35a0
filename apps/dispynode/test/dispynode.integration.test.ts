import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DispyJob, JobCluster } from '@dispy/client';
import { DISPYNODE_BIN, freePort, isAlive, startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';
import { startRelay } from '../../../testing/tcp-relay.js';

afterEach(stopAllNodes);

/** Runs the CLI to completion and returns its exit code and output. */
function runCli(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [DISPYNODE_BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    if (input !== undefined) child.stdin.end(input);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('dispynode CLI', () => {
  it('stops on SIGTERM and leaves no worker process behind', async () => {
    const node = await startNode({ host: '127.0.5.2', cpus: 2 });
    const cluster = new JobCluster(
      (spin: boolean) => {
        while (spin);
        return 1;
      },
      { nodes: [node.host], nodePort: node.port, ipAddr: '127.0.0.1', port: 0, loglevel: 'silent' },
    );
    expect(await cluster.submit(false).wait()).toBe(1);
    const busy = cluster.submit(true);
    await vi.waitFor(() => expect(busy.status).toBe(DispyJob.Running));
    const workers = node.workerPids();
    expect(workers).toHaveLength(2);
    await node.stop();
    expect(node.child.exitCode).toBe(0);
    expect(workers.filter(isAlive)).toEqual([]);
    await busy.wait();
    expect(busy.status).toBe(DispyJob.Cancelled);
    expect(busy.exception).toMatch(/went away/);
    await cluster.close();
  });

  it('prints --help with every flag', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    for (const flag of ['--cpus', '--host', '--dispy-port', '--name', '--dest-path-prefix', '--secret', '--daemon', '--debug']) {
      expect(stdout).toContain(flag);
    }
  });

  it('names a wrong flag value and exits non-zero', async () => {
    expect(await runCli(['--cpus', 'many'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--cpus must be an integer, got "many"'),
    });
    expect(await runCli(['-c', '999', '-p', '0'])).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/cpus must be at most \d+ on this machine, got 999/),
    });
    expect(await runCli(['--bogus'])).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown flag --bogus; see --help') });
  });

  it("accepts dispy's underscore spellings and negative CPU counts", async () => {
    const node = await startNode({ host: '127.0.5.3', cpus: -1, args: ['--name', 'lefty'] });
    expect(node.log).toMatch(/\[dispynode lefty\]/);
    expect(node.log).toContain(`serving ${os.availableParallelism() - 1} CPUs`);
    const prefix = mkdtempSync(path.join(os.tmpdir(), 'dispy-underscore-'));
    try {
      const underscored = await startNode({ host: '127.0.5.4', args: ['--dest_path_prefix', prefix, '--cpus=1'] });
      expect(underscored.log).toMatch(/serving 1 CPUs/);
    } finally {
      rmSync(prefix, { recursive: true, force: true });
    }
  });

  it('warns when started without a secret', async () => {
    const node = await startNode({ host: '127.0.5.5', cpus: 1 });
    expect(node.log).toMatch(/no secret set: anyone who can reach this node can run code on it/);
  });

  it('exits non-zero with a one-line error, closing what it opened, when an address cannot be bound', async () => {
    const prefix = mkdtempSync(path.join(os.tmpdir(), 'dispy-failed-start-'));
    try {
      // The second -i binds the port the first got: EADDRINUSE after one server is listening.
      const result = await runCli(['-i', '127.0.55.5', '-i', '127.0.55.5', '-p', '0', '-c', '1', '--daemon', '--dest-path-prefix', prefix]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^dispynode: cannot serve on 127\.0\.55\.5 port \d+ \(TCP\): .*EADDRINUSE.*\n$/);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(existsSync(path.join(prefix, 'dispynode.pid'))).toBe(false);
    } finally {
      rmSync(prefix, { recursive: true, force: true });
    }
  });

  it('survives a client that goes away while a job streams a file to it (no unhandled rejection), and serves the next', async () => {
    // strict: any unhandled rejection kills the node, whatever handlers it has. The node tells
    // clients to reach it at 127.0.5.8 (--ext-host), where a relay to it stands in for the
    // client's end of the connection, so the test can cut it in the middle of the transfer.
    const relayHost = '127.0.5.8';
    const port = await freePort(relayHost);
    const node = await startNode({
      host: '127.0.5.7',
      port,
      cpus: 1,
      env: { NODE_OPTIONS: '--unhandled-rejections=strict' },
      args: ['--ext-host', relayHost, '--max-file-size', '0'],
    });
    const fileBytes = 64 * 1024 * 1024;
    const relay = await startRelay(relayHost, node.host, port);
    // Past the first 4 MiB chunk, which the client has written to its partial file by then.
    relay.cutAfter(6 * 1024 * 1024);
    try {
      const sender = async (bytes: number) => {
        require('node:fs').writeFileSync('big', Buffer.alloc(bytes, 7));
        await dispySendFile('big');
        return 'sent';
      };
      const fileDir = mkdtempSync(path.join(os.tmpdir(), 'dispy-cut-file-'));
      const first = new JobCluster(sender, {
        nodes: [node.host, relayHost],
        nodePort: node.port,
        ipAddr: '127.0.0.1',
        port: 0,
        loglevel: 'silent',
        maxFileSize: 0,
        fileDir,
      });
      const job = first.submit(fileBytes);
      await job.wait();
      // The partial file of the transfer cut mid-way is gone from the client's directory.
      await vi.waitFor(() => expect(readdirSync(fileDir)).toEqual([]), { timeout: 5000 });
      rmSync(fileDir, { recursive: true, force: true });
      // The relay cut the connection after 6 MiB had come from the node: only FileChunk frames
      // are that large, and the node can hold back far less than the remaining 58 MiB (it waits
      // for 'drain' past 4 MiB queued), so the transfer was still being sent, its FileDone pending.
      expect(relay.cut).toBe(true);
      // The client reconnected and took the computation back: the job's dispySendFile failed with
      // the cut, so the job threw, and its reply came back once.
      expect(job.status).toBe(DispyJob.Terminated);
      expect(job.exception).toMatch(/went away/);
      await first.close();
      await node.waitForLog(/released this node/);

      const second = new JobCluster((n: number) => n * 2, {
        nodes: [node.host, relayHost],
        nodePort: node.port,
        ipAddr: '127.0.0.1',
        port: 0,
        loglevel: 'silent',
      });
      try {
        expect(await second.submit(21).wait()).toBe(42);
      } finally {
        await second.close();
      }
      expect(node.child.exitCode).toBeNull();
      expect(node.child.signalCode).toBeNull();
      expect(node.log).not.toMatch(/unhandled|went away\n\s+at /i);
    } finally {
      await relay.close();
    }
  });

  it('answers status and quit on stdin', async () => {
    const prefix = mkdtempSync(path.join(os.tmpdir(), 'dispy-stdin-'));
    const result = await runCli(['-i', '127.0.5.6', '-p', '0', '-c', '1', '--dest-path-prefix', prefix], 'status\nquit\n');
    rmSync(prefix, { recursive: true, force: true });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ cpus: 1, running: 0, addresses: [expect.stringMatching(/^127\.0\.5\.6:\d+$/)] });
    expect(result.stderr).toContain('quit: stopping');
  });

  it('reports on stdin (status) the clients and computations it serves at once, and takes --max-clients', async () => {
    const prefix = mkdtempSync(path.join(os.tmpdir(), 'dispy-status-'));
    const host = '127.0.150.30';
    const port = await freePort(host);
    const child = spawn(
      process.execPath,
      [DISPYNODE_BIN, '-i', host, '-p', String(port), '-c', '2', '--max-clients', '2', '--dest-path-prefix', prefix],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const options = { nodes: [host], nodePort: port, ipAddr: '127.0.0.1', port: 0, loglevel: 'silent' as const };
    function plusOne(n: number): number {
      return n + 1;
    }
    function timesTen(n: number): number {
      return n * 10;
    }
    const clusters = [new JobCluster(plusOne, options), new JobCluster(timesTen, options)];
    try {
      await vi.waitFor(() => expect(stderr).toMatch(/serving 2 CPUs/), { timeout: 10_000 });
      expect(await Promise.all(clusters.map((cluster) => cluster.submit(4).wait()))).toEqual([5, 40]);
      child.stdin.write('status\n');
      const status = await vi.waitFor(
        () => JSON.parse(stdout) as { clients: string[]; computations: { name: string; attached: boolean }[] },
        {
          timeout: 5_000,
        },
      );
      expect(status.clients).toHaveLength(2);
      expect(status.computations.map(({ name, attached }) => ({ name, attached })).sort((a, b) => a.name.localeCompare(b.name))).toEqual([
        { name: 'plusOne', attached: true },
        { name: 'timesTen', attached: true },
      ]);
    } finally {
      await Promise.all(clusters.map((cluster) => cluster.close({ timeout: 5 })));
      child.stdin.end('quit\n');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      rmSync(prefix, { recursive: true, force: true });
    }
    expect(child.exitCode).toBe(0);
  });

  it("takes dispy's stdin commands: stop (no new jobs), start (again), release (closes the clients' computations)", async () => {
    const prefix = mkdtempSync(path.join(os.tmpdir(), 'dispy-commands-'));
    const host = '127.0.150.31';
    const port = await freePort(host);
    const child = spawn(process.execPath, [DISPYNODE_BIN, '-i', host, '-p', String(port), '-c', '2', '--dest-path-prefix', prefix], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const cluster = new JobCluster((n: number) => n + 1, {
      nodes: [host],
      nodePort: port,
      ipAddr: '127.0.0.1',
      port: 0,
      loglevel: 'silent',
    });
    try {
      await vi.waitFor(() => expect(stderr).toMatch(/serving 2 CPUs/), { timeout: 10_000 });
      expect(await cluster.submit(1).wait()).toBe(2);
      child.stdin.write('stop\n');
      await vi.waitFor(() => expect(stdout).toContain('taking no new jobs (running ones finish); "start" takes them again'), {
        timeout: 5_000,
      });
      child.stdin.write('start\n');
      await vi.waitFor(() => expect(stdout).toContain('serving 2 CPUs'), { timeout: 5_000 });
      expect(await cluster.submit(2).wait()).toBe(3);
      child.stdin.write('release\n');
      await vi.waitFor(() => expect(stdout).toContain('released 1 client (their computations closed)'), { timeout: 5_000 });
      // The cluster was told the node stopped serving it: it gives the node up.
      await vi.waitFor(() => expect(cluster.status().nodes).toEqual([]), { timeout: 10_000 });
      child.stdin.write('what\n');
      await vi.waitFor(() => expect(stdout).toContain('commands: status, cpus N, stop, start, release, quit'), { timeout: 5_000 });
    } finally {
      await cluster.close({ timeout: 5 });
      child.stdin.end('quit\n');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      rmSync(prefix, { recursive: true, force: true });
    }
    expect(child.exitCode).toBe(0);
  });
});

declare global {
  function dispySendFile(path: string): Promise<number>;
}
