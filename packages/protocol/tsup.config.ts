import { libraryConfig } from '../../tsup.base.js';

export default libraryConfig({
  // `codec` is a small entry of its own: node workers load it without the schema and parser.
  entry: { index: 'src/index.ts', codec: 'src/codec/index.ts' },
});
