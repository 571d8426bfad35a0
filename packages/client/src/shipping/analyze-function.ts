import { isBuiltin } from 'node:module';
import { parse, type Node as AcornNode } from 'acorn';
import { analyze } from 'eslint-scope';
import { ComputationError } from '@dispy/protocol';
import { KNOWN_GLOBALS } from './known-globals.js';

/** A function made ready to ship: its source text and the name it is defined under. */
export interface ShippableFunction {
  name: string;
  /** The function's text as written. */
  source: string;
  /**
   * The text that is shipped: `source` with each dynamic `import(x)` turned into
   * `__dispy_import(x)`, which workers define to resolve from the computation's directory first
   * and then from the node's installed packages.
   */
  shippedSource: string;
}

export interface AnalyzeOptions {
  /** Further names the function may read as globals (what depends and setup define). */
  allowedGlobals?: Iterable<string>;
  /** What the function is, for messages: "the computation", "setup". */
  role?: string;
  /** Accept a class (depends may ship classes). */
  allowClass?: boolean;
}

const cache = new WeakMap<Function, { result: ShippableFunction; free: string[]; ast: AcornNode }>();

/**
 * Checks that `fn` can run on another machine from its source text alone and returns that text.
 *
 * Throws ComputationError naming the cause for native and bound functions, classes, method
 * shorthand, source that does not parse, and free variables captured from the enclosing scope
 * (anything that is not a global of Node, of dispy's workers, or in `allowedGlobals`). The parse
 * is cached per function.
 */
export function analyzeFunction(fn: unknown, options: AnalyzeOptions = {}): ShippableFunction {
  const role = options.role ?? 'the computation';
  if (typeof fn !== 'function') {
    throw new ComputationError(`${role} must be a function, got ${describe(fn)}`);
  }
  let entry = cache.get(fn);
  if (!entry) {
    entry = inspect(fn, role, options.allowClass ?? false);
    cache.set(fn, entry);
  }
  const allowed = new Set(options.allowedGlobals ?? []);
  // A named function may call itself; an anonymous one merely gets a name for messages.
  if (fn.name === entry.result.name) allowed.add(entry.result.name);
  const captured = entry.free.filter((name) => !allowed.has(name));
  if (captured.length > 0) {
    const [first] = captured;
    const others = captured.length > 1 ? ` (also: ${captured.slice(1).join(', ')})` : '';
    throw new ComputationError(
      `\`${first}\` is captured from the outer scope of ${label(role, fn)}${others}; ` +
        `a shipped function runs alone on the node: ${remedy(first!, entry.ast)}`,
    );
  }
  return entry.result;
}

function inspect(fn: Function, role: string, allowClass: boolean): { result: ShippableFunction; free: string[]; ast: AcornNode } {
  const source = Function.prototype.toString.call(fn);
  const name = fn.name && /^[A-Za-z_$][\w$]*$/.test(fn.name) ? fn.name : 'computation';
  if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) {
    if (fn.name.startsWith('bound ')) {
      throw new ComputationError(
        `${role} is a bound function (${fn.name}); bind() results cannot be shipped: pass the bound values as arguments`,
      );
    }
    throw new ComputationError(
      `${label(role, fn)} is a native function; only functions written in JavaScript or TypeScript can be shipped`,
    );
  }
  if (/^class[\s{]/.test(source) && !allowClass) {
    throw new ComputationError(`${label(role, fn)} is a class; pass a function (classes belong in depends)`);
  }
  let ast: AcornNode;
  try {
    ast = parse(`(${source})`, { ecmaVersion: 'latest', sourceType: 'script', ranges: true });
  } catch (error) {
    if (isMethodShorthand(source)) {
      throw new ComputationError(
        `${label(role, fn)} is written in method shorthand (\`${fn.name}(…) {…}\` inside an object or class); ` +
          `write it as \`function ${fn.name}(…) {…}\` or an arrow function`,
      );
    }
    throw new ComputationError(`${label(role, fn)} cannot be shipped: its source does not parse on its own (${(error as Error).message})`);
  }
  const scopes = analyze(ast, { ecmaVersion: 2022, sourceType: 'script', fallback: 'iteration' });
  const free = new Set<string>();
  for (const reference of scopes.globalScope.through) {
    const id = reference.identifier.name;
    if (!KNOWN_GLOBALS.has(id)) free.add(id);
  }
  return { result: { name, source, shippedSource: rewriteImports(source, ast) }, free: [...free], ast };
}

/**
 * Names a function assigns as globals (`globalThis.data = …`, `global.data = …`): what dispy's
 * `global data` pattern in setup makes available to the computation.
 */
export function assignedGlobals(fn: Function): string[] {
  const entry = cache.get(fn) ?? inspect(fn, 'setup', false);
  cache.set(fn, entry);
  const names = new Set<string>();
  visit(entry.ast, (node) => {
    if (node.type !== 'AssignmentExpression') return;
    const target = (
      node as unknown as {
        left: { type: string; computed?: boolean; object?: { type: string; name?: string }; property?: { type: string; name?: string } };
      }
    ).left;
    if (target.type !== 'MemberExpression' || target.computed || target.object?.type !== 'Identifier') return;
    if ((target.object.name === 'globalThis' || target.object.name === 'global') && target.property?.type === 'Identifier') {
      names.add(target.property.name!);
    }
  });
  return [...names];
}

/** Replaces the `import` keyword of every ImportExpression (positions shifted by the `(`). */
function rewriteImports(source: string, ast: AcornNode): string {
  const starts: number[] = [];
  visit(ast, (node) => {
    if (node.type === 'ImportExpression') starts.push(node.start - 1);
  });
  let out = source;
  for (const start of starts.sort((a, b) => b - a)) {
    out = `${out.slice(0, start)}__dispy_import${out.slice(start + 'import'.length)}`;
  }
  return out;
}

function visit(node: AcornNode, onNode: (node: AcornNode) => void): void {
  onNode(node);
  for (const value of Object.values(node)) {
    if (Array.isArray(value)) {
      for (const item of value) if (isNode(item)) visit(item, onNode);
    } else if (isNode(value)) {
      visit(value, onNode);
    }
  }
}

function isNode(value: unknown): value is AcornNode {
  return typeof value === 'object' && value !== null && typeof (value as AcornNode).type === 'string';
}

function isMethodShorthand(source: string): boolean {
  try {
    parse(`({${source}})`, { ecmaVersion: 'latest', sourceType: 'script' });
    return true;
  } catch {
    return false;
  }
}

/**
 * What to do about a captured name. A module imported at the top of the file (`import os from
 * 'node:os'`) is captured like any value, and passing it as an argument cannot work: it must be
 * required inside the function. Such a name is either esbuild's name for an import
 * (`import_node_os`, as tsx and tsup compile imports to CommonJS) or one used as a namespace
 * (`os.cpus()`), which is a module for certain when it is a Node built-in module's name.
 */
function remedy(name: string, ast: AcornNode): string {
  const compiled = /^import_(\w+?)\d*$/.exec(name);
  const namespace = usedAsNamespace(name, ast);
  const imported = compiled ? compiled[1]!.replace(/^node_/, '') : namespace ? name : undefined;
  if (imported !== undefined && (compiled || isBuiltin(imported))) {
    const module = isBuiltin(imported) ? `node:${imported}` : imported;
    return (
      `\`${name}\` looks like the module ${module} imported at the top of your file, and imports do not go with a function: ` +
      `require it inside the function (\`const ${imported} = require('${module}')\`), or list your own module's file in \`depends\``
    );
  }
  if (namespace) {
    return (
      `if \`${name}\` is a module imported at the top of your file, require it inside the function ` +
      `(\`const ${name} = require('…')\`) or list its file in \`depends\`; if it is a value, pass it as an argument or in \`depends\``
    );
  }
  return 'pass it as an argument or in `depends`';
}

/** Whether the function reads a property of `name` (`name.x`, `name.x()`). */
function usedAsNamespace(name: string, ast: AcornNode): boolean {
  let found = false;
  visit(ast, (node) => {
    const member = node as unknown as { type: string; object?: { type: string; name?: string } };
    if (member.type === 'MemberExpression' && member.object?.type === 'Identifier' && member.object.name === name) found = true;
  });
  return found;
}

function label(role: string, fn: Function): string {
  return fn.name ? `${role} ${fn.name}` : role;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return typeof value;
}
