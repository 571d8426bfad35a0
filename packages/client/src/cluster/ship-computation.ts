import { statSync } from 'node:fs';
import path from 'node:path';
import { ComputationError, dispy, encodeValue } from '@dispy/protocol';
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
    let isFile = false;
    try {
      isFile = statSync(computation).isFile();
    } catch {
      throw new ComputationError(`program ${JSON.stringify(computation)} does not exist`);
    }
    if (!isFile) throw new ComputationError(`program ${JSON.stringify(computation)} is not a file`);
    const name = path.basename(computation);
    return { ...common, name, kind: dispy.ComputationKind.PROGRAM, source: name, files: [...depends.files, path.resolve(computation)] };
  }
  const shipped = analyzeFunction(computation, { allowedGlobals: [...depends.names, ...setupGlobals] });
  return { ...common, name: shipped.name, kind: dispy.ComputationKind.FUNCTION, source: shipped.shippedSource };
}
