import { defineWorkspace } from 'vitest/config';

// One vitest project per package and app; each has its own vitest.config.ts.
export default defineWorkspace(['packages/*', 'apps/*']);
