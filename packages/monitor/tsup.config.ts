import { libraryConfig } from '../../tsup.base.js';

// `shims` gives the CommonJS build `import.meta.url`, by which the server finds its assets (../assets).
export default libraryConfig({ shims: true });
