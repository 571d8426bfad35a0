import { DispyNodeServer } from '@dispy/node';
import { runCli } from '@dispy/protocol/internal';
import { CLI } from './flags.js';

/** The CPUs offered when `stop` came, which `start` offers again. */
let cpusBeforeStop: number | undefined;

void runCli({
  spec: CLI,
  create: (options) => new DispyNodeServer(options),
  // --serve reached, service hours' end of a client's request: the node stopped by itself.
  finished: (node) => node.finished,
  command(node, word, argument, print) {
    if (word === 'cpus' && argument !== undefined && /^-?\d+$/.test(argument)) {
      try {
        print(`serving ${node.setCpus(Number(argument))} CPUs`);
      } catch (error) {
        print((error as Error).message);
      }
    } else if (word === 'stop') {
      // dispy's stop: take no new jobs (running ones finish) until `start`.
      if (node.cpus > 0) cpusBeforeStop = node.cpus;
      node.setCpus(0);
      print('taking no new jobs (running ones finish); "start" takes them again');
    } else if (word === 'start') {
      print(`serving ${node.setCpus(cpusBeforeStop ?? node.maxCpus)} CPUs`);
      cpusBeforeStop = undefined;
    } else if (word === 'release') {
      node.releaseClients().then(
        (count) => print(`released ${count} client${count === 1 ? '' : 's'} (their computations closed)`),
        (error: Error) => print(`release: ${error.message}`),
      );
    } else {
      return false;
    }
    return true;
  },
});
