import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, stopAllNodes, type NodeProcess } from '../../../testing/dispynode-process.mjs';

// The guide "Coming from Python dispy": each ```ts runnable block is a whole program. Each is
// typechecked, then run with tsx against a real dispynode on a loopback address of this file's own
// (127.0.141.*), with the guide's `nodes: ['127.0.0.1']` pointed at it; the lines marked
// `// prints: …` must appear on its stdout, in order.
const run = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const guide = path.join(root, 'docs/guide/coming-from-dispy.md');
const tsx = path.join(root, 'node_modules/.bin/tsx');
const tsc = path.join(root, 'node_modules/.bin/tsc');
const NODES = "nodes: ['127.0.0.1']";

interface Snippet {
  /** The heading the block is under, to name it in failures. */
  heading: string;
  code: string;
  prints: string[];
}

/** The ```ts runnable blocks of a Markdown text, with the heading each is under. */
export function runnableSnippets(markdown: string): Snippet[] {
  const snippets: Snippet[] = [];
  let heading = '';
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('#')) heading = line.replace(/^#+\s*/, '');
    if (line.trim() !== '```ts runnable') continue;
    const end = lines.findIndex((candidate, at) => at > i && candidate.trim() === '```');
    if (end < 0) throw new Error(`unclosed block under "${heading}"`);
    const code = lines.slice(i + 1, end).join('\n');
    const prints = [...code.matchAll(/\/\/ prints: (.*)$/gm)].map((match) => match[1]!);
    snippets.push({ heading, code, prints });
    i = end;
  }
  return snippets;
}

const snippets = runnableSnippets(readFileSync(guide, 'utf8'));
let node: NodeProcess;
let dir: string;
const files = new Map<Snippet, string>();

beforeAll(async () => {
  node = await startNode({ host: '127.0.141.1', cpus: 2 });
  // Inside the repository, so that `@dispy/client` resolves as it does for a user's program.
  mkdirSync(path.join(root, 'node_modules/.cache'), { recursive: true });
  dir = mkdtempSync(path.join(root, 'node_modules/.cache/coming-from-dispy-'));
  snippets.forEach((snippet, index) => {
    const file = path.join(dir, `snippet-${index + 1}.mts`);
    const local = `nodes: ['127.0.141.1'], nodePort: ${node.port}, ipAddr: '127.0.141.2', port: 0`;
    writeFileSync(file, snippet.code.replaceAll(NODES, local));
    files.set(snippet, file);
  });
});

afterAll(async () => {
  await stopAllNodes();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the guide "Coming from Python dispy"', () => {
  it('has runnable snippets, each naming the node to use and what it prints', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(6);
    for (const snippet of snippets) {
      expect(snippet.code, snippet.heading).toContain(NODES);
      expect(snippet.prints.length, snippet.heading).toBeGreaterThan(0);
    }
  });

  it('typechecks every runnable snippet (strict)', async () => {
    const tsconfig = path.join(dir, 'tsconfig.json');
    const compilerOptions = {
      strict: true,
      noEmit: true,
      target: 'es2022',
      module: 'nodenext',
      moduleResolution: 'nodenext',
      skipLibCheck: true,
      types: ['node'],
    };
    writeFileSync(tsconfig, JSON.stringify({ compilerOptions, files: [...files.values()] }));
    const checked = await run(tsc, ['-p', tsconfig], { cwd: dir, timeout: 120_000 }).catch((error: { stdout: string }) => error);
    expect(checked.stdout).toBe('');
  }, 150_000);

  it.each(snippets.map((snippet) => [snippet.heading, snippet] as const))(
    'runs the snippet under "%s" against a real dispynode',
    async (_heading, snippet) => {
      const file = files.get(snippet)!;
      const { stdout } = await run(tsx, [file], { cwd: dir, timeout: 60_000 });
      const lines = stdout.split('\n');
      let at = 0;
      for (const expected of snippet.prints) {
        const found = lines.indexOf(expected, at);
        expect(found, `"${expected}" in order, in:\n${stdout}`).toBeGreaterThanOrEqual(0);
        at = found + 1;
      }
    },
    90_000,
  );
});
