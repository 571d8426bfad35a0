import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { 'worker-runtime': 'src/execution/worker-runtime.ts' },
  format: ['esm'],
  dts: false,
  sourcemap: true,
  clean: false,
  target: 'node20',
});
