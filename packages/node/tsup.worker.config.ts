import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    'worker-runtime': 'src/execution/worker-runtime.ts',
    // Registered by the worker runtime from beside it; runs in Node's module loader thread.
    'resolve-hook': 'src/execution/resolve-hook.ts',
    // Preloaded by worker threads a computation starts (see module-confinement.ts).
    'confine-thread': 'src/execution/confine-thread.ts',
  },
  format: ['esm'],
  dts: false,
  sourcemap: true,
  clean: false,
  // Each entry self-contained: module-confinement.ts locates resolve-hook.js and confine-thread.js beside itself.
  splitting: false,
  target: 'node20',
});
