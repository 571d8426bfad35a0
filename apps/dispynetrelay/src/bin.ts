import { createInterface } from 'node:readline';
import { DispyNetRelay } from '@dispy/netrelay';
import { helpText, parseFlags, saveConfig } from './flags.js';

async function main(): Promise<void> {
  let settings;
  try {
    settings = parseFlags(process.argv.slice(2), process.env);
  } catch (error) {
    process.stderr.write(`dispynetrelay: ${(error as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  for (const warning of settings.warnings) process.stderr.write(`dispynetrelay: warning: ${warning}\n`);
  delete process.env.DISPY_SECRET;
  if (settings.help) {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  if (settings.saveConfig) {
    try {
      new DispyNetRelay(settings.options); // validates before anything is written
      saveConfig(settings.saveConfig, settings.options);
    } catch (error) {
      process.stderr.write(`dispynetrelay: ${(error as Error).message}\n`);
      process.exitCode = 1;
    }
    return;
  }
  let relay: DispyNetRelay;
  try {
    relay = new DispyNetRelay(settings.options);
    await relay.start();
  } catch (error) {
    process.stderr.write(`dispynetrelay: ${(error as Error).message}\n`);
    process.exitCode = 1;
    return;
  }

  let stopping: Promise<void> | undefined;
  const stop = (why: string) => {
    stopping ??= (async () => {
      relay.logger.info(`${why}: stopping`);
      await relay.close();
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
      else process.stdout.write(`${JSON.stringify(relay.status(), null, 2)}\n`);
    });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`dispynetrelay: ${(error as Error).message ?? String(error)}\n`);
  process.exitCode = 1;
});
