import { libraryConfig } from '../../tsup.base.js';

export default libraryConfig({
  // import.meta.url locates the worker entry, in the CJS build too.
  shims: true,
  // The forked worker processes' entry is built on its own (ESM only).
  onSuccess: 'tsup --config tsup.worker.config.ts',
});
