import { defineConfig } from 'tsup';

export default defineConfig({
  // `codec` is a small entry of its own: node workers load it without the schema and parser.
  entry: { index: 'src/index.ts', codec: 'src/codec/value-codec.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  shims: true,
});
