// dispy memory during a large transfer: a 200 MiB `depends` file of a JobCluster sent to one real
// dispynode (1 CPU, --max-file-size 0) on loopback, once. Reports how much the node's and the
// client's peak resident memory (VmHWM, Linux) grew meanwhile: a transfer streams through bounded
// buffers, so both should stay far below the file's size. This section ran as a test before; the
// test now checks only that the file arrives whole.
import { DispyJob, JobCluster } from '../../packages/client/dist/index.js';
import { MiB, createBigFile } from '../lib/big-file.mjs';
import { startNode } from '../../testing/dispynode-process.mjs';
import { peakRssMiB } from '../lib/memory.mjs';
import { withTimeout } from '../lib/timing.mjs';

const FILE_BYTES = 200 * MiB;
const FILE_NAME = 'dispy-bench-200MiB.bin';
/** Bounds on every wait, so a hang in dispy becomes an error in the report, not a stuck run. */
const JOB_TIMEOUT_MS = 120_000;
const CLOSE_TIMEOUT_MS = 15_000;

// The job: the size of the depends file as the node sees it. The name is a literal: a computation
// may not refer to the bench's variables.
const statFile = () => require('node:fs').statSync('dispy-bench-200MiB.bin').size;
if (!statFile.toString().includes(FILE_NAME)) throw new Error(`the job must stat ${FILE_NAME}`);

export default {
  id: 'dispy-memory',
  title: 'dispy memory: peak RSS growth of the node and the client while a 200 MiB depends file moves',
  async run() {
    const big = await createBigFile({ bytes: FILE_BYTES, name: FILE_NAME });
    let node;
    let cluster;
    try {
      node = await startNode({ host: '127.0.0.1', cpus: 1, args: ['--max-file-size', '0'] });
      // Not counted: a first cluster without the file, so that loading and compiling code on
      // either side is not mistaken for the transfer's memory.
      const warmUp = new JobCluster(() => 0, { nodes: [node.host], nodePort: node.port, ipAddr: node.host, port: 0 });
      try {
        await withTimeout(warmUp.submit().wait(), JOB_TIMEOUT_MS, 'the warm-up job did not finish');
      } finally {
        await withTimeout(warmUp.close(), CLOSE_TIMEOUT_MS, 'cluster.close() did not finish');
      }
      const nodeBefore = await peakRssMiB(node.child.pid);
      const clientBefore = await peakRssMiB(process.pid);
      if (nodeBefore === undefined || clientBefore === undefined) return []; // no /proc: nothing to report
      cluster = new JobCluster(statFile, { nodes: [node.host], nodePort: node.port, ipAddr: node.host, port: 0, depends: [big.file] });
      const job = cluster.submit();
      await withTimeout(job.wait(), JOB_TIMEOUT_MS, 'the job with the 200 MiB depends file did not finish');
      if (job.status !== DispyJob.Finished || job.result !== FILE_BYTES) {
        throw new Error(`the job ended ${DispyJob.statusName(job.status)} with ${JSON.stringify(job.result)}, not ${FILE_BYTES}`);
      }
      const nodeAfter = await peakRssMiB(node.child.pid);
      const clientAfter = await peakRssMiB(process.pid);
      const note = (before, after) => `peak RSS ${before.toFixed(0)} → ${after.toFixed(0)} MiB, one transfer after a warm-up cluster`;
      return [
        {
          key: 'dispy.file.memory.node',
          label: 'dispynode peak memory growth (200 MiB depends file)',
          value: nodeAfter - nodeBefore,
          unit: 'MiB',
          digits: 0,
          note: note(nodeBefore, nodeAfter),
        },
        {
          key: 'dispy.file.memory.client',
          label: 'client peak memory growth (200 MiB depends file)',
          value: clientAfter - clientBefore,
          unit: 'MiB',
          digits: 0,
          note: note(clientBefore, clientAfter),
        },
      ];
    } finally {
      try {
        if (cluster) await withTimeout(cluster.close(), CLOSE_TIMEOUT_MS, 'cluster.close() did not finish');
        await node?.stop();
      } finally {
        await big.remove();
      }
    }
  },
};
