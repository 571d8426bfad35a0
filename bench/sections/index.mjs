// Every section of the suite, in the order `pnpm bench` runs them: piscina and TCP after dispy's
// nodes have been stopped. Each dispy section starts (and stops) its own dispynode.
import dispyArguments from './dispy-arguments.mjs';
import dispyChannel from './dispy-channel.mjs';
import dispyFileTransfer from './dispy-file-transfer.mjs';
import dispyJobs from './dispy-jobs.mjs';
import dispyMemory from './dispy-memory.mjs';
import dispyRecoverFile from './dispy-recover-file.mjs';
import dispySharedNode from './dispy-shared-node.mjs';
import dispyShared from './dispy-shared.mjs';
import filePipeline from './file-pipeline.mjs';
import piscinaPool from './piscina-pool.mjs';
import tcpRtt from './tcp-rtt.mjs';
import tcpTransfer from './tcp-transfer.mjs';

export const SECTIONS = [
  dispyJobs,
  dispyFileTransfer,
  dispyArguments,
  dispyChannel,
  dispyMemory,
  dispyRecoverFile,
  dispySharedNode,
  dispyShared,
  piscinaPool,
  tcpRtt,
  tcpTransfer,
  filePipeline,
];
