// Runs one section of the suite (its id is the argument) in a process of its own and sends the
// parent its metrics, or the error that stopped it. A fresh process per section means no section
// measures in a heap, JIT or event loop another one left behind, whatever their order.
import { SECTIONS } from '../sections/index.mjs';
import { stopAllNodes } from '../../testing/dispynode-process.mjs';

const section = SECTIONS.find((candidate) => candidate.id === process.argv[2]);
try {
  if (!section) throw new Error(`no section ${process.argv[2]}`);
  process.send({ metrics: await section.run() });
} catch (error) {
  process.send({ error: error.stack ?? error.message });
} finally {
  await stopAllNodes();
  process.disconnect();
}
