import { runCli } from '@dispy/protocol/internal';
import { DispyScheduler } from '@dispy/scheduler';
import { CLI } from './flags.js';

void runCli({ spec: CLI, create: (options) => new DispyScheduler(options) });
