import { statSync } from 'node:fs';
import path from 'node:path';
import { OptionError, registerClass } from '@dispy/protocol';
import type { Definition } from '@dispy/scheduler';
import { analyzeFunction } from '../shipping/analyze-function.js';

/** What a `depends` list holds, sorted by how each part travels. */
export interface Depends {
  /** Functions and classes, shipped as source and defined as globals of their names. */
  definitions: Definition[];
  /** `{ name: value }` entries, defined as globals. */
  values: Record<string, unknown>;
  /** Paths of files, sent to the computation's directory under their base names. */
  files: string[];
  /** Every global name the list defines (for the closure check of the computation). */
  names: string[];
}

/**
 * Sorts a `depends` list (the cluster's, or a job's) and checks each entry, throwing OptionError
 * that names the entry: functions and classes must be shippable on their own (their free names
 * may be other depends), values must be plain `{ name: value }` objects, files must exist.
 */
export function collectDepends(list: unknown[], where: string): Depends {
  const depends: Depends = { definitions: [], values: {}, files: [], names: [] };
  const functions: Function[] = [];
  for (const [index, entry] of list.entries()) {
    const what = `${where}[${index}]`;
    if (typeof entry === 'function') {
      if (!entry.name) throw new OptionError(`${what}: a function or class in depends needs a name`);
      functions.push(entry);
      depends.names.push(entry.name);
    } else if (typeof entry === 'string') {
      let isFile = false;
      try {
        isFile = statSync(entry).isFile();
      } catch {
        throw new OptionError(`${what}: file ${JSON.stringify(entry)} does not exist`);
      }
      if (!isFile) throw new OptionError(`${what}: ${JSON.stringify(entry)} is not a file`);
      depends.files.push(path.resolve(entry));
    } else if (entry !== null && typeof entry === 'object' && Object.getPrototypeOf(entry) === Object.prototype) {
      for (const [name, value] of Object.entries(entry)) {
        if (!/^[A-Za-z_$][\w$]*$/.test(name)) throw new OptionError(`${what}: ${JSON.stringify(name)} is not a valid global name`);
        depends.values[name] = value;
        depends.names.push(name);
      }
    } else {
      throw new OptionError(
        `${what}: depends takes functions, classes, { name: value } objects and file paths, got ${entry === null ? 'null' : typeof entry}`,
      );
    }
  }
  for (const fn of functions) {
    const shipped = analyzeFunction(fn, { role: `the depends entry`, allowClass: true, allowedGlobals: depends.names });
    depends.definitions.push({ name: fn.name, source: shipped.shippedSource });
    if (/^class[\s{]/.test(shipped.source)) registerClass(fn.name, fn);
  }
  return depends;
}
