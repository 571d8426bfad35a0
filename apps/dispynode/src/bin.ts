import { createInterface } from 'node:readline';
import { DispyNodeServer } from '@dispy/node';
import { helpText, parseFlags } from './flags.js';

async function main(): Promise<void> {
  let settings;
  try {
    settings = parseFlags(process.argv.slice(2), process.env);
  } catch (error) {
    process.stderr.write(`dispynode: ${(error as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  if (settings.help) {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  let node: DispyNodeServer;
  try {
    node = new DispyNodeServer(settings.options);
    await node.start();
  } catch (error) {
    process.stderr.write(`dispynode: ${(error as Error).message}\n`);
    process.exitCode = 1;
    return;
  }

  let stopping: Promise<void> | undefined;
  const stop = (why: string) => {
    stopping ??= (async () => {
      node.logger.info(`${why}: stopping`);
      await node.close();
      process.exit(process.exitCode ?? 0);
    })();
    return stopping;
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  if (!settings.daemon) {
    const commands = createInterface({ input: process.stdin });
    commands.on('line', (line) => {
      const command = line.trim();
      if (command === 'quit' || command === 'exit') void stop(command);
      else if (command === 'status' || command === '') process.stdout.write(`${JSON.stringify(node.status(), null, 2)}\n`);
      else process.stdout.write(`unknown command ${JSON.stringify(command)}; commands: status, quit\n`);
    });
    commands.on('close', () => void 0);
  }
}

void main();
