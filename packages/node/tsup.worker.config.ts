import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    'worker-runtime': 'src/execution/worker-runtime.ts',
    // Registered by the worker runtime from beside it; runs in Node's module loader thread.
    'resolve-hook': 'src/execution/resolve-hook.ts',
  },
  format: ['esm'],
  dts: false,
  sourcemap: true,
  clean: false,
  target: 'node20',
});
