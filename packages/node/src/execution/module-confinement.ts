/*
 * Where a worker's modules may come from. Node looks for `node_modules` (and for the package.json
 * that maps `#name` imports) in every directory above a file, so a `node_modules` planted above
 * the prefix by another user, in a shared directory, would be loaded by a computation's
 * `require('zod')` or `import 'zod'` and run as the node's user. For files inside the
 * computation's directory, packages resolve from `node_modules` inside it (never above it), else
 * from the node's installation:
 *
 * - require(): Module._nodeModulePaths, patched at once (it costs nothing);
 * - import (ES modules): a resolve hook (resolve-hook.ts), registered on the first load of a
 *   module of the computation's directory, whichever way it is loaded: through the computation's
 *   `require` or `import()`, or any CommonJS file of that directory compiled (its own
 *   `createRequire`, or a package of the node's requiring a file there). The hook starts a thread
 *   of Node's loader (some 30 ms, and more on a busy machine), so computations that load no module
 *   of their own never pay for it;
 * - worker threads a computation starts: each gets both from its start (confine-thread.ts, given
 *   with `--import`), as its modules are not the process's.
 */
import Module, { register, syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import workerThreads, { type WorkerOptions } from 'node:worker_threads';
import type { ResolveHookData } from './resolve-hook.js';

let computeDir = '';
let importsConfined = false;

/** Whether `file` is the computation's directory or in it. */
function isInside(file: string): boolean {
  return file === computeDir || file.startsWith(computeDir + path.sep);
}

/**
 * Confines the modules of the computation in `dir` (absolute) from now on, in this thread: see
 * above. Call it once, before any code of the computation runs.
 */
export function confineModules(dir: string): void {
  computeDir = path.resolve(dir);
  const loader = Module as unknown as { _nodeModulePaths: (this: void, from: string) => string[] };
  const nodeModulePaths = loader._nodeModulePaths;
  loader._nodeModulePaths = (from: string) => {
    const paths = nodeModulePaths(from);
    return isInside(path.resolve(from)) ? paths.filter(isInside) : paths;
  };
  // A CommonJS file of the computation's directory may import() ES modules: confine those first.
  const prototype = Module.prototype as unknown as { _compile: (content: string, filename: string) => unknown };
  const compile = prototype._compile;
  prototype._compile = function (this: unknown, content: string, filename: string) {
    if (isInside(filename)) confineModuleImports();
    return compile.call(this, content, filename);
  };
  confineThreads();
}

/** Registers the resolve hook (once): from now on, imports from the computation's files are confined. */
export function confineModuleImports(): void {
  if (importsConfined || computeDir === '') return;
  importsConfined = true;
  register<ResolveHookData>(new URL('./resolve-hook.js', import.meta.url), {
    // This file is built into worker-runtime.js and confine-thread.js, both in the node's dist.
    data: { computeDir, runtimeURL: import.meta.url },
  });
}

/**
 * Every worker thread started from now on loads confine-thread.js (built beside this file)
 * before its own code, which confines its modules as this thread's are.
 */
function confineThreads(): void {
  const preload = `${new URL('./confine-thread.js', import.meta.url).href}?computeDir=${encodeURIComponent(computeDir)}`;
  const threads = workerThreads as { Worker: typeof workerThreads.Worker };
  const Worker = threads.Worker;
  threads.Worker = class ConfinedWorker extends Worker {
    constructor(filename: string | URL, options: WorkerOptions = {}) {
      // A worker without execArgv inherits this thread's: keep them, and add the preload.
      super(filename, { ...options, execArgv: [...(options.execArgv ?? process.execArgv), '--import', preload] });
    }
  };
  // `import { Worker } from 'node:worker_threads'` sees the replacement too.
  syncBuiltinESMExports();
}
