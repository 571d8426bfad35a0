import { createInterface } from 'node:readline';
import { DispyScheduler } from '@dispy/scheduler';
import { helpText, parseFlags, saveConfig } from './flags.js';

async function main(): Promise<void> {
  let settings;
  try {
    settings = parseFlags(process.argv.slice(2), process.env);
  } catch (error) {
    process.stderr.write(`dispyscheduler: ${(error as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  for (const warning of settings.warnings) process.stderr.write(`dispyscheduler: warning: ${warning}\n`);
  delete process.env.DISPY_NODE_SECRET;
  delete process.env.DISPY_CLUSTER_SECRET;
  if (settings.help) {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  if (settings.saveConfig) {
    try {
      new DispyScheduler(settings.options); // validates before anything is written
      saveConfig(settings.saveConfig, settings.options);
    } catch (error) {
      process.stderr.write(`dispyscheduler: ${(error as Error).message}\n`);
      process.exitCode = 1;
    }
    return;
  }
  let scheduler: DispyScheduler;
  try {
    scheduler = new DispyScheduler(settings.options);
    await scheduler.start();
  } catch (error) {
    process.stderr.write(`dispyscheduler: ${(error as Error).message}\n`);
    process.exitCode = 1;
    return;
  }

  let stopping: Promise<void> | undefined;
  const stop = (why: string) => {
    stopping ??= (async () => {
      scheduler.logger.info(`${why}: stopping`);
      await scheduler.close();
      process.exit(process.exitCode ?? 0);
    })();
    return stopping;
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  if (!settings.daemon) {
    const commands = createInterface({ input: process.stdin });
    commands.on('line', (line) => {
      const word = line.trim().split(/\s+/)[0];
      if (word === 'quit' || word === 'exit') void stop(word);
      else process.stdout.write(`${JSON.stringify(scheduler.status(), null, 2)}\n`);
    });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`dispyscheduler: ${(error as Error).message ?? String(error)}\n`);
  process.exitCode = 1;
});
