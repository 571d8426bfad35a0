import { DispyNetRelay } from '@dispy/netrelay';
import { runCli } from '@dispy/protocol/internal';
import { CLI } from './flags.js';

void runCli({ spec: CLI, create: (options) => new DispyNetRelay(options) });
