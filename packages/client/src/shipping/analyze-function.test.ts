import { describe, expect, it } from 'vitest';
import { ComputationError, DispyError } from '@dispy/protocol';
import { analyzeFunction, type AnalyzeOptions } from './analyze-function.js';
import { DISPY_COMPUTATION_GLOBALS, KNOWN_GLOBALS, TRANSPILER_HELPERS } from './known-globals.js';

/**
 * Makes a function from exact source text, as it would look after a given compiler. Built in the
 * global scope, so the source is all there is (vitest's own transform does not touch it).
 */
function fromSource(source: string): Function {
  return new Function(`return (${source});`)() as Function;
}

/** Runs analyzeFunction and returns the ComputationError it throws (failing the test otherwise). */
function refusal(fn: unknown, options?: AnalyzeOptions): ComputationError {
  try {
    analyzeFunction(fn, options);
  } catch (error) {
    expect(error).toBeInstanceOf(ComputationError);
    expect(DispyError.isInstance(error)).toBe(true);
    expect((error as ComputationError).code).toBe('DISPY_ERR_COMPUTATION');
    return error as ComputationError;
  }
  throw new Error('expected a ComputationError, but the function was accepted');
}

describe('analyzeFunction accepts self-contained functions', () => {
  it('accepts an arrow function and returns its name and exact source', () => {
    const double = (x: number) => x * 2;
    const shipped = analyzeFunction(double);
    expect(shipped.name).toBe('double');
    expect(shipped.source).toBe(double.toString());
    expect(fromSource(shipped.source)).toBeTypeOf('function');
  });

  it('names an anonymous function "computation"', () => {
    expect(analyzeFunction((x: number) => x + 1).name).toBe('computation');
    expect(analyzeFunction(fromSource('function () { return 1; }')).name).toBe('computation');
  });

  it('accepts a function expression and an async function', () => {
    const square = function (n: number) {
      const result = n * n;
      return result;
    };
    expect(analyzeFunction(square).name).toBe('square');
    const cube = function cubeOf(n: number): number {
      return n === 0 ? 0 : n * n * n;
    };
    expect(analyzeFunction(cube).name).toBe('cubeOf');

    async function fetchAndSum(values: number[]): Promise<number> {
      let total = 0;
      for (const value of values) total += await Promise.resolve(value);
      return total;
    }
    const shipped = analyzeFunction(fetchAndSum);
    expect(shipped.name).toBe('fetchAndSum');
    expect(shipped.source).toBe(fetchAndSum.toString());

    const asyncArrow = async (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    expect(analyzeFunction(asyncArrow).name).toBe('asyncArrow');
  });

  it('accepts generators, default parameters, destructuring and inner closures over its own locals', () => {
    function* range(from = 0, { to, step = 1 }: { to: number; step?: number }) {
      for (let i = from; i < to; i += step) yield i;
    }
    expect(analyzeFunction(range).name).toBe('range');

    const counter = (start: number) => {
      let count = start;
      const next = () => ++count;
      class Local {
        value = next();
      }
      return [new Local().value, next(), current()];
      function current() {
        return count;
      }
    };
    expect(analyzeFunction(counter).name).toBe('counter');
  });

  it('accepts a recursive named function, an arrow recursive through its own name, and mutual recursion inside', () => {
    function fib(n: number): number {
      return n < 2 ? n : fib(n - 1) + fib(n - 2);
    }
    expect(analyzeFunction(fib).name).toBe('fib');

    const factorial = (n: number): number => (n <= 1 ? 1 : n * factorial(n - 1));
    expect(analyzeFunction(factorial).name).toBe('factorial');

    const parity = (n: number) => {
      const isEven = (k: number): boolean => (k === 0 ? true : isOdd(k - 1));
      const isOdd = (k: number): boolean => (k === 0 ? false : isEven(k - 1));
      return isEven(n);
    };
    expect(analyzeFunction(parity).name).toBe('parity');
  });

  it('accepts require, import(), process, Buffer and console', () => {
    const usesNode = (path: string) => {
      const fs = require('node:fs');
      console.log(process.pid, process.env.HOME, __dirname);
      return Buffer.from(fs.readFileSync(path)).toString('base64');
    };
    expect(analyzeFunction(usesNode).name).toBe('usesNode');

    // Written as source text: vitest rewrites import() in test files.
    const dynamicImport = fromSource(
      `async function load(file) { const { readFile } = await import('node:fs/promises'); return readFile(file); }`,
    );
    expect(analyzeFunction(dynamicImport).name).toBe('load');
  });

  it('ships import() as __dispy_import(), leaving the written source and strings alone', () => {
    const source =
      `async function load(a) { const x = await import('node:fs'); ` +
      `const y = await import(a + "import(" ); return [x, y, 'import("z")', await import(\`./\${a}\`)]; }`;
    const shipped = analyzeFunction(fromSource(source));
    expect(shipped.source).toBe(source);
    expect(shipped.shippedSource).toBe(
      `async function load(a) { const x = await __dispy_import('node:fs'); ` +
        `const y = await __dispy_import(a + "import(" ); return [x, y, 'import("z")', await __dispy_import(\`./\${a}\`)]; }`,
    );
    const plain = (x: number) => x;
    expect(analyzeFunction(plain).shippedSource).toBe(plain.toString());
  });

  it('accepts ECMAScript and web globals a worker has', () => {
    const usesGlobals = () => {
      const url = new URL('http://127.0.0.1/');
      const text = new TextEncoder().encode(JSON.stringify({ at: Date.now(), r: Math.random() }));
      return [url, text, structuredClone(new Map()), globalThis, new AbortController(), crypto.randomUUID()];
    };
    expect(() => analyzeFunction(usesGlobals)).not.toThrow();
  });

  it("accepts dispy's worker globals (dispyProvisionalResult and the reference spellings)", () => {
    const provisional = fromSource(
      `function compute(n) { for (let i = 0; i < n; i++) dispyProvisionalResult(i); dispy_provisional_result(n); ` +
        `dispySendFile('out.txt'); return [dispy_node_name, dispy_node_ip_addr, dispy_job_path]; }`,
    );
    expect(analyzeFunction(provisional).name).toBe('compute');
    for (const name of DISPY_COMPUTATION_GLOBALS) expect(KNOWN_GLOBALS.has(name)).toBe(true);
  });

  it('accepts a function compiled the way esbuild/tsx emits with keepNames (__name)', () => {
    const esbuildOutput = fromSource(`function outer(values) {
    const inner = /* @__PURE__ */ __name(() => 1, "inner");
    const helper = /* @__PURE__ */ __name(function helper2(x) {
      return x + inner();
    }, "helper");
    return values.map(helper);
  }`);
    expect(analyzeFunction(esbuildOutput).name).toBe('outer');

    // A class inside, as esbuild keeps its name too.
    const withClass = fromSource(`(rows) => {
    const _Row = class _Row { constructor(v) { this.v = v; } };
    __name(_Row, "Row");
    let Row = _Row;
    return rows.map((v) => new Row(v));
  }`);
    expect(() => analyzeFunction(withClass)).not.toThrow();
  });

  it('accepts other transpiler helpers (__async, __awaiter, __spreadValues)', () => {
    const lowered = fromSource(`function run(a) {
    return __async(this, null, function* () {
      const merged = __spreadValues(__spreadValues({}, a), { b: 1 });
      return yield __awaiter(this, void 0, void 0, function* () { return merged; });
    });
  }`);
    expect(analyzeFunction(lowered).name).toBe('run');
    for (const name of ['__name', '__async', '__awaiter', '__spreadValues']) {
      expect(TRANSPILER_HELPERS).toContain(name);
    }
  });
});

describe('analyzeFunction refuses what cannot run on another machine', () => {
  it('refuses a captured outer variable, naming it in backticks', () => {
    const factor = 3;
    const scale = (x: number) => x * factor;
    const error = refusal(scale);
    expect(error.message).toContain('`factor` is captured from the outer scope');
    expect(error.message).toContain('of the computation scale');
    expect(error.message).toContain('pass it as an argument or in `depends`');
  });

  it('tells a module imported at the top of the file to be required inside the function', () => {
    // As written (`import os from 'node:os'`, then `os.cpus()`), and as tsx or tsup compile it to CommonJS.
    expect(refusal(fromSource('function count() { return os.cpus().length; }')).message).toContain(
      '`os` looks like the module node:os imported at the top of your file, and imports do not go with a function: ' +
        "require it inside the function (`const os = require('node:os')`)",
    );
    expect(refusal(fromSource('function count() { return import_node_os.default.cpus().length; }')).message).toContain(
      '`import_node_os` looks like the module node:os imported at the top of your file',
    );
    expect(refusal(fromSource('function check(x) { return import_zod.z.string().parse(x); }')).message).toContain(
      "require it inside the function (`const zod = require('zod')`)",
    );
    // A name used as a namespace that is no built-in module may be either: both remedies are given.
    expect(refusal(fromSource('function f() { return helpers.twice(2); }')).message).toContain(
      "if `helpers` is a module imported at the top of your file, require it inside the function (`const helpers = require('…')`) " +
        'or list its file in `depends`; if it is a value, pass it as an argument or in `depends`',
    );
    // A value named like a module, not used as one, is a value.
    expect(refusal(fromSource('function f() { return path; }')).message).toContain('pass it as an argument or in `depends`');
  });

  it('lists every captured name, the first in backticks and the others after "also"', () => {
    const a = 1;
    const b = 2;
    const c = 3;
    const sum = () => a + b + c;
    const error = refusal(sum);
    expect(error.message).toMatch(/^`a` is captured from the outer scope of the computation sum \(also: b, c\);/);
  });

  it('refuses an outer function called from the computation', () => {
    const helper = (x: number) => x + 1;
    const error = refusal((x: number) => helper(x));
    expect(error.message).toContain('`helper` is captured from the outer scope');
  });

  it('refuses an assignment to an undeclared outer variable', () => {
    const error = refusal(fromSource('function leak() { counter = 1; }'));
    expect(error.message).toContain('`counter` is captured from the outer scope of the computation leak');
  });

  it('names the role in messages when given', () => {
    const limit = 10;
    const error = refusal(() => limit, { role: 'setup' });
    expect(error.message).toBe(
      '`limit` is captured from the outer scope of setup; ' +
        'a shipped function runs alone on the node: pass it as an argument or in `depends`',
    );
  });

  it('refuses method shorthand and says how to rewrite it', () => {
    const jobs = {
      compute(x: number) {
        return x * 2;
      },
    };
    const error = refusal(jobs.compute);
    expect(error.message).toContain('method shorthand');
    expect(error.message).toContain('function compute(…) {…}');
  });

  it('refuses async and generator method shorthand too', () => {
    const jobs = {
      async load() {
        return 1;
      },
      *items() {
        yield 1;
      },
    };
    expect(refusal(jobs.load).message).toContain('method shorthand');
    expect(refusal(jobs.items).message).toContain('method shorthand');
  });

  it('refuses a native function', () => {
    const error = refusal(Math.max);
    expect(error.message).toContain('the computation max is a native function');
    expect(refusal(parseInt).message).toContain('native');
    expect(refusal(Array.prototype.map).message).toContain('native');
  });

  it('refuses a bound function', () => {
    function add(a: number, b: number) {
      return a + b;
    }
    const error = refusal(add.bind(null, 1));
    expect(error.message).toContain('bound function (bound add)');
    expect(error.message).toContain('pass the bound values as arguments');
    expect(refusal(((x: number) => x).bind(null)).message).toContain('bound');
  });

  it('refuses a class', () => {
    class Worker {
      run() {
        return 1;
      }
    }
    const error = refusal(Worker);
    expect(error.message).toContain('the computation Worker is a class');
    expect(refusal(class {}).message).toContain('is a class');
  });

  it('refuses a non-function, saying it must be a function and what it got', () => {
    expect(refusal(42).message).toBe('the computation must be a function, got number');
    expect(refusal('x => x').message).toBe('the computation must be a function, got the string "x => x"');
    expect(refusal(null).message).toContain('must be a function, got null');
    expect(refusal(undefined).message).toContain('must be a function, got undefined');
    expect(refusal({ compute: () => 1 }).message).toContain('must be a function, got object');
    expect(refusal(42, { role: 'setup' }).message).toMatch(/^setup must be a function/);
  });

  it('refuses a function whose source does not parse on its own', () => {
    class Base {
      value() {
        return 1;
      }
    }
    class Derived extends Base {
      arrow() {
        return () => super.value();
      }
    }
    const error = refusal(new Derived().arrow());
    expect(error.message).toContain('its source does not parse on its own');
  });
});

describe('analyzeFunction allowedGlobals', () => {
  it('makes a free name acceptable', () => {
    const table = { a: 1 };
    const lookup = (key: 'a') => table[key];
    expect(refusal(lookup).message).toContain('`table`');
    expect(analyzeFunction(lookup, { allowedGlobals: ['table'] }).name).toBe('lookup');
    expect(analyzeFunction(lookup, { allowedGlobals: new Set(['table', 'unused']) }).name).toBe('lookup');
  });

  it('accepts only the names it lists', () => {
    const a = 1;
    const b = 2;
    const both = () => a + b;
    const error = refusal(both, { allowedGlobals: ['a'] });
    expect(error.message).toMatch(/^`b` is captured/);
    expect(error.message).not.toContain('also');
  });

  it('does not stick to the function across calls (the parse is cached, the allowance is not)', () => {
    const offset = 5;
    const shift = (x: number) => x + offset;
    expect(analyzeFunction(shift, { allowedGlobals: ['offset'] }).source).toBe(shift.toString());
    expect(refusal(shift).message).toContain('`offset`');
    expect(analyzeFunction(shift, { allowedGlobals: ['offset'] }).name).toBe('shift');
  });

  it('returns the same result for the same function each time', () => {
    const id = (x: unknown) => x;
    expect(analyzeFunction(id)).toBe(analyzeFunction(id));
  });
});
