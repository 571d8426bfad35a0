import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { JobCluster } from '@dispy/client';
import { DISPYNODE_BIN, startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';

// The attacks of a second local user (`nobody`) on a node's prefix and modules, and the secret's
// exposure to workers and to the process list, run as the attacker would.

const isRoot = process.getuid?.() === 0;
const dirs: string[] = [];
const clusters: JobCluster[] = [];

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((cluster) => cluster.close()));
  await stopAllNodes();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A directory every user may write to, with the sticky bit (as /tmp). */
function sharedDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-shared-'));
  chmodSync(dir, 0o1777);
  dirs.push(dir);
  return dir;
}

/** A directory of the victim (the node's user) holding a private key. */
function victimDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-victim-'));
  writeFileSync(path.join(dir, 'id_ed25519'), 'private key', { mode: 0o600 });
  dirs.push(dir);
  return dir;
}

/** Runs a command as the user `nobody`. */
function asNobody(...command: string[]): void {
  execFileSync('runuser', ['-u', 'nobody', '--', ...command]);
}

/** Runs dispynode to completion with `env` added to its environment. */
function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [DISPYNODE_BIN, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

const serveNothing = (host: string) => ['-i', host, '-p', '0', '-c', '1', '--daemon', '--serve', '0'];

describe.runIf(isRoot)('the prefix against another local user', () => {
  it('refuses a default prefix that nobody made a symbolic link, and --clean removes nothing through it', async () => {
    const state = sharedDir();
    const victim = victimDir();
    asNobody('ln', '-s', victim, path.join(state, 'dispy'));
    const { code, stderr } = await runCli([...serveNothing('127.0.92.2'), '--clean'], { XDG_STATE_HOME: state });
    expect(code).toBe(1);
    expect(stderr).toContain(`the prefix ${path.join(state, 'dispy')} is a symbolic link`);
    expect(stderr).toMatch(/choose another directory with --dest-path-prefix/);
    expect(readFileSync(path.join(victim, 'id_ed25519'), 'utf8')).toBe('private key');
  });

  it("refuses a prefix nobody made first (world-writable), one that is its user's but world-writable, and one under nobody's directory", async () => {
    const state = sharedDir();
    asNobody('mkdir', '-m', '777', path.join(state, 'dispy'));
    asNobody('touch', path.join(state, 'dispy', 'planted'));
    let result = await runCli([...serveNothing('127.0.92.3'), '--clean'], { XDG_STATE_HOME: state });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/the prefix \S+ belongs to uid 65534, not to this node's user \(uid 0\)/);
    expect(existsSync(path.join(state, 'dispy', 'planted'))).toBe(true);

    const loose = path.join(state, 'loose');
    mkdirSync(loose);
    chmodSync(loose, 0o777);
    result = await runCli([...serveNothing('127.0.92.3'), '--dest-path-prefix', loose]);
    expect(result.stderr).toMatch(/is writable by its group or by others \(mode 777\)/);

    // The old default, /tmp/dispy/node, with /tmp/dispy made by another user.
    asNobody('mkdir', path.join(state, 'theirs'));
    result = await runCli([...serveNothing('127.0.92.3'), '--dest-path-prefix', path.join(state, 'theirs', 'node')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/lies under \S+theirs, which belongs to uid 65534/);
  });

  it('--clean removes a symbolic link under the prefix, never what it points to', async () => {
    const prefix = path.join(mkdtempSync(path.join(os.tmpdir(), 'dispy-prefix-')), 'node');
    dirs.push(path.dirname(prefix));
    const victim = victimDir();
    mkdirSync(path.join(prefix, 'computation-x'), { recursive: true, mode: 0o700 });
    execFileSync('ln', ['-s', victim, path.join(prefix, 'computation-x', 'link')]);
    execFileSync('ln', ['-s', victim, path.join(prefix, 'top-link')]);
    const { code } = await runCli([...serveNothing('127.0.92.4'), '--clean', '--dest-path-prefix', prefix]);
    expect(code).toBe(0);
    expect(existsSync(path.join(prefix, 'top-link'))).toBe(false);
    expect(existsSync(path.join(prefix, 'computation-x'))).toBe(false);
    expect(readFileSync(path.join(victim, 'id_ed25519'), 'utf8')).toBe('private key');
  });

  it("makes the default prefix private to the node's user", async () => {
    const state = sharedDir();
    const { code } = await runCli(serveNothing('127.0.92.5'), { XDG_STATE_HOME: state });
    expect(code).toBe(0);
    const made = lstatSync(path.join(state, 'dispy'));
    expect(made.isDirectory()).toBe(true);
    expect(made.mode & 0o777).toBe(0o700);
  });
});

describe.runIf(isRoot)("a computation's modules and environment", () => {
  it('never loads a node_modules that nobody planted above the prefix, and never sees the secret', async () => {
    const top = sharedDir();
    for (const name of ['zod', 'planted-only']) {
      asNobody('mkdir', '-p', path.join(top, 'node_modules', name));
      asNobody('sh', '-c', `echo 'module.exports = { planted: true };' > ${path.join(top, 'node_modules', name, 'index.js')}`);
    }
    const secret = 'a long enough secret for tests';
    const node = await startNode({ host: '127.0.92.6', cpus: 1, secret, args: ['--dest-path-prefix', path.join(top, 'prefix')] });
    const cluster = new JobCluster(
      () => {
        const zod = require('zod');
        let plantedOnly: string;
        try {
          plantedOnly = JSON.stringify(require('planted-only'));
        } catch (error) {
          plantedOnly = (error as NodeJS.ErrnoException).code ?? 'error';
        }
        return {
          zodIsPlanted: zod.planted === true,
          zodIsReal: typeof zod.z?.object === 'function',
          plantedOnly,
          dispyVariables: Object.keys(process.env).filter((name) => name.startsWith('DISPY')),
        };
      },
      { nodes: [node.host], nodePort: node.port, ipAddr: '127.0.0.1', port: 0, loglevel: 'silent', secret },
    );
    clusters.push(cluster as JobCluster);
    expect(await cluster.submit().wait()).toEqual({
      zodIsPlanted: false,
      zodIsReal: true,
      plantedOnly: 'MODULE_NOT_FOUND',
      // The mark of the node's processes (process-marks.ts; the job's own goes into what it spawns), no secret.
      dispyVariables: ['DISPY_NODE_MARK'],
    });

    const program = path.join(top, 'print-secret.sh');
    writeFileSync(program, '#!/bin/sh\necho "secret=[$DISPY_SECRET]"\n', { mode: 0o755 });
    const programCluster = new JobCluster(program, {
      nodes: [node.host],
      nodePort: node.port,
      ipAddr: '127.0.0.1',
      port: 0,
      loglevel: 'silent',
      secret,
    });
    clusters.push(programCluster);
    await cluster.close();
    const job = programCluster.submit();
    await job.wait();
    expect(job.stdout).toBe('secret=[]\n');
  });
});

describe.runIf(isRoot)("a computation's ES modules", () => {
  it("import from a shipped .mjs file finds node_modules in the computation's directory and the node's installation, never one planted above the prefix", async () => {
    const top = sharedDir();
    for (const name of ['zod', 'planted-only']) {
      asNobody('mkdir', '-p', path.join(top, 'node_modules', name));
      asNobody('sh', '-c', `echo 'module.exports = { planted: true };' > ${path.join(top, 'node_modules', name, 'index.js')}`);
    }
    // A package.json whose `imports` would map `#planted` for the files below it.
    asNobody('sh', '-c', `echo 'module.exports = { planted: true };' > ${path.join(top, 'planted.js')}`);
    asNobody('sh', '-c', `echo '{ "imports": { "#planted": "./planted.js" } }' > ${path.join(top, 'package.json')}`);
    const shipped = path.join(victimDir(), 'esm-imports.mjs');
    writeFileSync(
      shipped,
      [
        "import * as zod from 'zod';",
        'export const zodIsPlanted = zod.planted === true || zod.default?.planted === true;',
        "export const zodIsReal = typeof zod.z?.object === 'function';",
        '/** What import(name) from this file gives: its default export, or the error code. */',
        'export async function load(name) {',
        '  try {',
        '    const loaded = await import(name);',
        '    return JSON.stringify(loaded.default ?? loaded);',
        '  } catch (error) {',
        "    return error.code ?? 'error';",
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    // A CommonJS depends file whose import() goes to Node's ES module resolver as well.
    const shippedCjs = path.join(path.dirname(shipped), 'esm-loader.cjs');
    writeFileSync(
      shippedCjs,
      "exports.load = (name) => import(name).then((loaded) => JSON.stringify(loaded.default ?? loaded), (error) => error.code ?? 'error');\n",
    );
    const node = await startNode({ host: '127.0.92.10', cpus: 1, args: ['--dest-path-prefix', path.join(top, 'prefix')] });
    const cluster = new JobCluster(
      async () => {
        // First, before the computation imports anything itself.
        const plantedOnlyFromCjs = await require('./esm-loader.cjs').load('planted-only');
        const fs = require('node:fs');
        // A package of the computation's own, in node_modules of its directory.
        fs.mkdirSync('node_modules/own-package', { recursive: true });
        fs.writeFileSync('node_modules/own-package/package.json', '{ "name": "own-package", "type": "module", "exports": "./index.js" }');
        fs.writeFileSync('node_modules/own-package/index.js', 'export default { own: true };');
        // @ts-expect-error -- esm-imports.mjs exists in the computation's directory on the node, not here
        const shipped = await import('./esm-imports.mjs');
        let plantedOnly: string;
        try {
          // @ts-expect-error -- planted-only exists only where nobody planted it, above the prefix
          plantedOnly = JSON.stringify(await import('planted-only'));
        } catch (error) {
          plantedOnly = (error as NodeJS.ErrnoException).code ?? 'error';
        }
        return {
          zodIsPlanted: shipped.zodIsPlanted,
          zodIsReal: shipped.zodIsReal,
          plantedOnlyFromShipped: await shipped.load('planted-only'),
          plantedOnlyFromCjs,
          packageImport: await shipped.load('#planted'),
          plantedOnlyFromComputation: plantedOnly,
          ownPackage: await shipped.load('own-package'),
        };
      },
      { nodes: [node.host], nodePort: node.port, ipAddr: '127.0.0.1', port: 0, loglevel: 'silent', depends: [shipped, shippedCjs] },
    );
    clusters.push(cluster as JobCluster);
    expect(await cluster.submit().wait()).toEqual({
      zodIsPlanted: false,
      zodIsReal: true,
      plantedOnlyFromShipped: 'ERR_MODULE_NOT_FOUND',
      plantedOnlyFromCjs: 'ERR_MODULE_NOT_FOUND',
      packageImport: 'ERR_PACKAGE_IMPORT_NOT_DEFINED',
      plantedOnlyFromComputation: 'ERR_MODULE_NOT_FOUND',
      ownPackage: '{"own":true}',
    });
  });
});

describe.runIf(isRoot)("a computation's modules loaded other ways", () => {
  it("confines modules of the computation's directory loaded before its own require or import(): its createRequire, a require from outside it, worker threads", async () => {
    const top = sharedDir();
    for (const name of ['zod', 'planted-only']) {
      asNobody('mkdir', '-p', path.join(top, 'node_modules', name));
      asNobody('sh', '-c', `echo 'module.exports = { planted: true };' > ${path.join(top, 'node_modules', name, 'index.js')}`);
    }
    const dir = victimDir();
    // A CommonJS depends file whose import() goes to Node's ES module resolver.
    const loader = path.join(dir, 'late-loader.cjs');
    writeFileSync(
      loader,
      "exports.load = (name) => import(name).then((loaded) => JSON.stringify(loaded.default ?? loaded), (error) => error.code ?? 'error');\n",
    );
    // A worker thread's file: what import and require give it.
    const thread = path.join(dir, 'thread.mjs');
    writeFileSync(
      thread,
      [
        "import { parentPort } from 'node:worker_threads';",
        "import { createRequire } from 'node:module';",
        "const imported = (name) => import(name).then((loaded) => JSON.stringify(loaded.default ?? loaded), (error) => error.code ?? 'error');",
        'const required = (name) => {',
        '  try {',
        '    return JSON.stringify(createRequire(import.meta.url)(name));',
        '  } catch (error) {',
        "    return error.code ?? 'error';",
        '  }',
        '};',
        "parentPort.postMessage({ imported: await imported('planted-only'), required: required('planted-only'), zod: await imported('zod') });",
        '',
      ].join('\n'),
    );
    const node = await startNode({ host: '127.0.92.11', cpus: 1, args: ['--dest-path-prefix', path.join(top, 'prefix')] });
    /** Runs `computation` in a computation of its own (so in fresh worker processes), with the two files. */
    const run = async (computation: () => Promise<unknown>): Promise<unknown> => {
      const cluster = new JobCluster(computation, {
        nodes: [node.host],
        nodePort: node.port,
        ipAddr: '127.0.0.1',
        port: 0,
        loglevel: 'silent',
        depends: [loader, thread],
      });
      clusters.push(cluster as JobCluster);
      const job = cluster.submit();
      await job.wait();
      await cluster.close();
      return job.result ?? job.exception;
    };
    // Each first, before the computation loads anything of its directory another way.
    const ownCreateRequire = await run(async () => {
      const { createRequire } = require('node:module');
      return createRequire(`${process.cwd()}/computation.js`)('./late-loader.cjs').load('planted-only');
    });
    const requireFromOutside = await run(async () => {
      const { createRequire } = require('node:module');
      return createRequire('/')(`${process.cwd()}/late-loader.cjs`).load('planted-only');
    });
    const workerThread = await run(async () => {
      const { Worker } = require('node:worker_threads');
      const worker = new Worker(`${process.cwd()}/thread.mjs`);
      try {
        return await new Promise((resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
        });
      } finally {
        await worker.terminate();
      }
    });
    expect({ ownCreateRequire, requireFromOutside, workerThread }).toEqual({
      ownCreateRequire: 'ERR_MODULE_NOT_FOUND',
      requireFromOutside: 'ERR_MODULE_NOT_FOUND',
      workerThread: { imported: 'ERR_MODULE_NOT_FOUND', required: 'MODULE_NOT_FOUND', zod: expect.not.stringContaining('planted') },
    });
  });
});

describe('the secret on the command line and in a file', () => {
  it('-s warns that every user can read it and names the alternatives', async () => {
    const { code, stderr } = await runCli([...serveNothing('127.0.92.7'), '--dest-path-prefix', tempPrefix(), '-s', 'on the command line']);
    expect(code).toBe(0);
    expect(stderr).toMatch(/warning: -s\/--secret puts the secret on the command line, where every user of this machine can read it/);
    expect(stderr).toMatch(/DISPY_SECRET or in a file with --secret-file FILE/);
  });

  it('--secret-file gives the secret, and a file others may read is refused', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-secret-'));
    dirs.push(dir);
    const file = path.join(dir, 'secret');
    writeFileSync(file, 'from a private file\n', { mode: 0o600 });
    const node = await startNode({ host: '127.0.92.8', cpus: 1, args: ['--secret-file', file] });
    expect(node.log).not.toMatch(/no secret set|warning/);
    const cluster = new JobCluster((x: number) => x + 1, {
      nodes: [node.host],
      nodePort: node.port,
      ipAddr: '127.0.0.1',
      port: 0,
      loglevel: 'silent',
      secret: 'from a private file',
    });
    clusters.push(cluster as JobCluster);
    expect(await cluster.submit(1).wait()).toBe(2);

    chmodSync(file, 0o644);
    const loose = await runCli([...serveNothing('127.0.92.9'), '--dest-path-prefix', tempPrefix(), '--secret-file', file]);
    expect(loose.code).toBe(2);
    expect(loose.stderr).toContain(
      `--secret-file ${file} may be read or changed by its group or others (mode 0644); make it private: chmod 600 ${file}`,
    );
  });
});

function tempPrefix(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-prefix-'));
  dirs.push(dir);
  return path.join(dir, 'node');
}
