import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { transformSync } from 'esbuild';
import { afterEach, describe, expect, it } from 'vitest';
import { JobCluster } from '../src/index.js';
import { startNode, stopAllNodes } from '../../../testing/dispynode-process.mjs';

const run = promisify(execFile);
const tsx = fileURLToPath(new URL('../../../node_modules/.bin/tsx', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/typescript-computation.ts', import.meta.url));

afterEach(stopAllNodes);

describe('computations written in TypeScript', () => {
  it('runs a TypeScript program under tsx, whose functions carry __name helpers', async () => {
    const node = await startNode({ host: '127.0.4.2' });
    const { stdout } = await run(tsx, [fixture, node.host, String(node.port)], { timeout: 60_000 });
    const output = JSON.parse(stdout);
    expect(output.source).toBe(true);
    expect(output.results).toEqual([
      { length: 5, label: '(3, 4)' },
      { length: 13, label: '(5, 12)' },
    ]);
  });

  it('runs a function built by esbuild (as tsup does) with keepNames', async () => {
    const built = transformSync(
      'export async function compute(n: number): Promise<number> { const inc = (x: number) => x + 1; return inc(n); }',
      { loader: 'ts', format: 'cjs', target: 'node20', keepNames: true },
    ).code;
    const module = { exports: {} as { compute?: (n: number) => Promise<number> } };
    new Function('module', 'exports', built)(module, module.exports);
    const { compute } = module.exports;
    expect(compute!.toString()).toContain('__name(');
    const node = await startNode({ host: '127.0.4.3' });
    const cluster = new JobCluster(compute!, { nodes: [node.host], nodePort: node.port, ipAddr: '127.0.0.1', port: 0, loglevel: 'silent' });
    expect(await cluster.submit(41).wait()).toBe(42);
    await cluster.close();
  });
});
