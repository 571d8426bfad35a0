import { runCli } from '@dispy/protocol/internal';
import { CLI } from './flags.js';
import { MonitoredScheduler } from './monitored-scheduler.js';

void runCli({ spec: CLI, create: (options) => new MonitoredScheduler(options) });
