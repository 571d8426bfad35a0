import { libraryConfig } from '../../tsup.base.js';

export default libraryConfig({
  // `codec` is a small entry of its own: node workers load it without the schema and parser.
  // `internal` holds the helpers the packages share that are not the wire (logger, addresses).
  entry: { index: 'src/index.ts', codec: 'src/codec/index.ts', internal: 'src/internal/index.ts' },
});
