/*
 * Module resolve hook of worker processes, registered with module.register() once the worker
 * knows its computation's directory; it runs in Node's loader thread, so it is its own entry.
 *
 * Node's ES module resolver looks for `node_modules` in every directory above the importing
 * file, so an ES module of a computation (an `.mjs` file shipped in `depends`) that imports
 * `zod` would load a `node_modules/zod` planted above the prefix by another user. For a bare
 * specifier imported from a file inside the computation's directory this hook resolves from
 * `node_modules` inside that directory (never above it), else from the node's installation, and
 * a `#name` one only through a package.json inside it. Everything else passes through untouched.
 */
import { statSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** What the worker runtime passes to module.register(). */
export interface ResolveHookData {
  /** The computation's directory, absolute. */
  computeDir: string;
  /** The worker runtime's own file URL: where the node's installation resolves from. */
  runtimeURL: string;
}

interface ResolveContext {
  conditions: string[];
  importAttributes?: Record<string, string>;
  parentURL?: string;
}
type NextResolve = (specifier: string, context?: ResolveContext) => Promise<unknown>;

let computeDir = '';
/** file: URL of the computation's directory, with a trailing slash. */
let computePrefix = '';
let runtimeURL = '';

export function initialize(data: ResolveHookData): void {
  computeDir = path.resolve(data.computeDir);
  computePrefix = pathToFileURL(computeDir + path.sep).href;
  runtimeURL = data.runtimeURL;
}

/** A package name (`zod`, `@scope/name`), not a path, URL or builtin. */
function packageName(specifier: string): string | undefined {
  if (/^[./#]/.test(specifier) || specifier.includes(':') || isBuiltin(specifier)) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

function isFile(file: string): boolean {
  return statSync(file, { throwIfNoEntry: false })?.isFile() ?? false;
}

/** The directories from a file's up to the computation's directory, the nearest first. */
function* dirsUp(fileURL: string): Generator<string> {
  for (let dir = path.dirname(fileURLToPath(fileURL)); ; dir = path.dirname(dir)) {
    yield dir;
    if (dir === computeDir || !dir.startsWith(computeDir + path.sep)) return;
  }
}

/**
 * A `#name` specifier maps through the `imports` of the nearest package.json: only one inside
 * the computation's directory, never one planted above it.
 */
function resolveImport(specifier: string, context: ResolveContext, nextResolve: NextResolve): Promise<unknown> {
  for (const dir of dirsUp(context.parentURL!)) {
    if (isFile(path.join(dir, 'package.json'))) return nextResolve(specifier, context);
  }
  const error = new TypeError(
    `Package import specifier "${specifier}" is not defined: no package.json in the computation's directory imported from ${context.parentURL}`,
  ) as NodeJS.ErrnoException;
  error.code = 'ERR_PACKAGE_IMPORT_NOT_DEFINED';
  return Promise.reject(error);
}

function isDirectory(dir: string): boolean {
  return statSync(dir, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

export async function resolve(specifier: string, context: ResolveContext, nextResolve: NextResolve): Promise<unknown> {
  const parentURL = context.parentURL;
  // The common path: an import from outside the computation's directory.
  if (!computePrefix || !parentURL?.startsWith(computePrefix)) return nextResolve(specifier, context);
  if (specifier.startsWith('#')) return resolveImport(specifier, context, nextResolve);
  const name = packageName(specifier);
  if (name === undefined) return nextResolve(specifier, context);
  for (const dir of dirsUp(parentURL)) {
    if (isDirectory(path.join(dir, 'node_modules', name))) {
      // Resolved as if from a file in that node_modules: Node finds the package there first, and
      // looks for no package.json (self-reference) above it, which could lie above the prefix.
      const from = pathToFileURL(path.join(dir, 'node_modules', 'dispy-resolve.js')).href;
      return nextResolve(specifier, { ...context, parentURL: from });
    }
  }
  return nextResolve(specifier, { ...context, parentURL: runtimeURL });
}
