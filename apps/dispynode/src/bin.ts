import { createInterface } from 'node:readline';
import { DispyNodeServer } from '@dispy/node';
import { helpText, parseFlags, saveConfig } from './flags.js';

async function main(): Promise<void> {
  let settings;
  try {
    settings = parseFlags(process.argv.slice(2), process.env);
  } catch (error) {
    process.stderr.write(`dispynode: ${(error as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  for (const warning of settings.warnings) process.stderr.write(`dispynode: warning: ${warning}\n`);
  // The node needs the secret no more in its environment (workers never get it: see workerEnv).
  delete process.env.DISPY_SECRET;
  delete process.env.DISPY_NODE_SECRET;
  if (settings.help) {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  if (settings.saveConfig) {
    try {
      new DispyNodeServer(settings.options); // validates before anything is written
      saveConfig(settings.saveConfig, settings.options);
    } catch (error) {
      process.stderr.write(`dispynode: ${(error as Error).message}\n`);
      process.exitCode = 1;
    }
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
  // --serve reached, service hours' end of a client's request: the node stopped by itself.
  void node.finished.then(() => stop('done'));

  if (!settings.daemon) {
    const commands = createInterface({ input: process.stdin });
    /** The CPUs offered when `stop` came, which `start` offers again. */
    let cpusBeforeStop: number | undefined;
    commands.on('line', (line) => {
      const command = line.trim();
      const [word, argument] = command.split(/\s+/);
      if (word === 'quit' || word === 'exit') void stop(word);
      else if (word === 'status' || word === '') process.stdout.write(`${JSON.stringify(node.status(), null, 2)}\n`);
      else if (word === 'cpus' && argument !== undefined && /^-?\d+$/.test(argument)) {
        try {
          process.stdout.write(`serving ${node.setCpus(Number(argument))} CPUs\n`);
        } catch (error) {
          process.stdout.write(`${(error as Error).message}\n`);
        }
      } else if (word === 'stop') {
        // dispy's stop: take no new jobs (running ones finish) until `start`.
        if (node.cpus > 0) cpusBeforeStop = node.cpus;
        node.setCpus(0);
        process.stdout.write('taking no new jobs (running ones finish); "start" takes them again\n');
      } else if (word === 'start') {
        process.stdout.write(`serving ${node.setCpus(cpusBeforeStop ?? node.maxCpus)} CPUs\n`);
        cpusBeforeStop = undefined;
      } else if (word === 'release') {
        node.releaseClients().then(
          (count) => process.stdout.write(`released ${count} client${count === 1 ? '' : 's'} (their computations closed)\n`),
          (error: Error) => process.stdout.write(`release: ${error.message}\n`),
        );
      } else {
        // As dispy does, anything else prints the status (with the commands, for the unsure).
        process.stdout.write(`${JSON.stringify(node.status(), null, 2)}\n`);
        process.stdout.write('commands: status, cpus N, stop, start, release, quit\n');
      }
    });
    commands.on('close', () => void 0);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`dispynode: ${(error as Error).message ?? String(error)}\n`);
  process.exitCode = 1;
});
