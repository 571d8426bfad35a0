/*
 * Helpers that TypeScript, esbuild (tsx, tsup) and Babel emit into function bodies. A function
 * shipped from a transpiled program refers to them as globals, so every worker defines them.
 * Behaviour follows what the emitters expect; only the helpers a single function can contain.
 */
const defineProperty = Object.defineProperty;

const helpers: Record<string, unknown> = {
  __name: (target: object, value: string) => defineProperty(target, 'name', { value, configurable: true }),
  __defProp: defineProperty,
  __defNormalProp: (obj: object, key: PropertyKey, value: unknown) =>
    key in obj
      ? defineProperty(obj, key, { enumerable: true, configurable: true, writable: true, value })
      : ((obj as Record<PropertyKey, unknown>)[key] = value),
  __publicField: (obj: object, key: PropertyKey, value: unknown) => {
    const name = typeof key !== 'symbol' ? `${String(key)}` : key;
    defineProperty(obj, name, { enumerable: true, configurable: true, writable: true, value });
    return value;
  },
  __spreadValues: (a: object, b: object) => Object.assign(a, b),
  __spreadProps: (a: object, b: PropertyDescriptorMap) => Object.defineProperties(a, b),
  __assign: Object.assign,
  __rest: (source: Record<PropertyKey, unknown>, exclude: PropertyKey[]) => {
    const target: Record<PropertyKey, unknown> = {};
    for (const key of Reflect.ownKeys(source)) {
      if (!exclude.includes(key) && Object.prototype.propertyIsEnumerable.call(source, key)) {
        target[key] = source[key];
      }
    }
    return target;
  },
  __async: (self: unknown, args: unknown[], generator: (...a: unknown[]) => Generator) => runGenerator(generator.apply(self, args)),
  __awaiter: (self: unknown, args: unknown[], _P: unknown, generator: (...a: unknown[]) => Generator) =>
    runGenerator(generator.apply(self, args ?? [])),
};
helpers.__objRest = helpers.__rest;

/** Drives a generator that yields promises, as the async-function downlevel helpers do. */
function runGenerator(iterator: Generator): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const step = (method: 'next' | 'throw', input?: unknown): void => {
      let result: IteratorResult<unknown>;
      try {
        result = iterator[method](input);
      } catch (error) {
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- whatever the generator threw, as a native async function would
        reject(error);
        return;
      }
      if (result.done) resolve(result.value);
      else
        Promise.resolve(result.value).then(
          (v) => step('next', v),
          (e) => step('throw', e),
        );
    };
    step('next');
  });
}

/** Defines the helpers as globals of this worker. */
export function installTranspilerHelpers(): void {
  for (const [name, helper] of Object.entries(helpers)) {
    defineProperty(globalThis, name, { value: helper, writable: true, configurable: true });
  }
}
