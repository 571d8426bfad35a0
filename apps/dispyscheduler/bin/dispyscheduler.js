#!/usr/bin/env node
// The command: a file that exists before the build, so that installing a checkout links it
// (pnpm links only bins it finds). The code is in dist/, which `pnpm build` makes.
import '../dist/bin.js';
