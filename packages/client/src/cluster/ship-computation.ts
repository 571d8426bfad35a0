import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { ComputationError, OptionError, dispy, encodeValue } from '@dispy/protocol';
import type { Definition } from '@dispy/scheduler';
import { analyzeFunction, assignedGlobals } from '../shipping/analyze-function.js';
import { collectDepends } from './depends.js';
import type { ResolvedClusterOptions } from './options.js';

/** A computation made ready to ship, with everything it needs on the nodes. */
export interface ShippedComputation {
  name: string;
  kind: dispy.ComputationKind;
  /** Function source, or the program's file name. */
  source: string;
  definitions: Definition[];
  values?: Uint8Array;
  setup?: Definition;
  cleanupFunction?: Definition;
  /** Local paths of files to send (depends files, and a program itself). */
  files: string[];
}

/**
 * Checks and prepares a computation (a function, or the path of a program) with its depends,
 * setup and cleanup, before anything is sent: free names of each function must be Node's or
 * dispy's globals, depends, or globals that setup assigns.
 * @throws ComputationError or OptionError naming the cause
 */
export function shipComputation(computation: unknown, options: ResolvedClusterOptions): ShippedComputation {
  const depends = collectDepends(options.depends, 'JobCluster option "depends"');
  const cleanup = typeof options.cleanup === 'function' ? (options.cleanup as Function) : undefined;
  if (typeof computation === 'string' && (options.setup || cleanup || depends.names.length > 0)) {
    throw new ComputationError(
      'a program computation takes only files in depends; setup, a cleanup function, and depends functions, classes and values are for function computations',
    );
  }
  const setupGlobals = options.setup ? assignedGlobals(options.setup) : [];
  const definition = (fn: Function | undefined, role: string, allowed: string[]): Definition | undefined => {
    if (!fn) return undefined;
    const shipped = analyzeFunction(fn, { role, allowedGlobals: allowed });
    return { name: fn.name || role, source: shipped.shippedSource };
  };
  const setup = definition(options.setup, 'setup', depends.names);
  const cleanupFunction = definition(cleanup, 'cleanup', [...depends.names, ...setupGlobals]);
  const values = Object.keys(depends.values).length > 0 ? encodeValue(depends.values, 'JobCluster option "depends"') : undefined;
  const common = { definitions: depends.definitions, values, setup, cleanupFunction, files: depends.files };
  if (typeof computation === 'string') {
    // A program: shipped as a file of the computation, run per job with string arguments.
    const program = findProgram(computation);
    const name = path.basename(program);
    return { ...common, name, kind: dispy.ComputationKind.PROGRAM, source: name, files: [...depends.files, program] };
  }
  const shipped = analyzeFunction(computation, { allowedGlobals: [...depends.names, ...setupGlobals] });
  return { ...common, name: shipped.name, kind: dispy.ComputationKind.FUNCTION, source: shipped.shippedSource };
}

/**
 * A program's arguments as its argv: strings as they are, numbers, bigints and booleans as their
 * text (as dispy's `str()` turns them into text); values with no plain text form are refused.
 */
export function programArguments(args: readonly unknown[]): string[] {
  return args.map((arg, index) => {
    if (typeof arg === 'string') return arg;
    if (typeof arg === 'number' || typeof arg === 'bigint' || typeof arg === 'boolean') return String(arg);
    const what = arg === null ? 'null' : Array.isArray(arg) ? 'an array' : typeof arg;
    throw new OptionError(
      `a program's arguments are its command line: argument ${index + 1} is ${what}, which has no plain text form; ` +
        'pass strings, numbers or booleans (JSON.stringify an object yourself)',
    );
  });
}

/**
 * The file of a program computation: the path as given (from the working directory), or, for a
 * bare name that is no file here (`'convert'`), the first executable of that name in PATH, as a
 * shell finds it. The file is shipped to the nodes, so it must suit their platform.
 * @throws ComputationError when there is no such file
 */
function findProgram(computation: string): string {
  if (isFile(computation)) return path.resolve(computation);
  const bare = !computation.includes('/') && !computation.includes(path.sep);
  if (bare) {
    for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
      const candidate = path.resolve(dir || '.', computation);
      if (dir && isFile(candidate) && isExecutable(candidate)) return candidate;
    }
  }
  let exists = false;
  try {
    statSync(computation);
    exists = true;
  } catch {
    // reported below
  }
  if (exists) throw new ComputationError(`program ${JSON.stringify(computation)} is not a file`);
  throw new ComputationError(`program ${JSON.stringify(computation)} does not exist${bare ? ' in the working directory or in PATH' : ''}`);
}

function isFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
