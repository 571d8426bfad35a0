import { defineConfig } from 'tsup';

export default defineConfig({
  // worker-runtime is the entry of the forked worker processes; it is ESM only.
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  shims: true,
  onSuccess: 'tsup --config tsup.worker.config.ts',
});
