import { mkdirSync } from 'node:fs';
import { FileReceiver, type FrameInit } from '@dispy/protocol';
import type { ClientAllocations } from './client-allocations.js';
import { jobDir } from './client-job-files.js';
import type { ClientNodeRequests } from './client-node-requests.js';
import type { ClientComputation } from './kept-client-computations.js';

export interface ClientFileReceiverOptions {
  /** The computations of the client's connection, by id. */
  computations: ReadonlyMap<string, ClientComputation>;
  /** sendFile transfers (a FileChunk naming a node). */
  toNodes: Pick<ClientNodeRequests, 'toNodeRoot' | 'isToNode' | 'forwardToNode'>;
  /** Per-node depends files of Allocate requests. */
  allocations: Pick<ClientAllocations, 'rootFor' | 'arrived'>;
  /** Largest file accepted, in bytes (0: no limit). */
  maxFileSize: number;
  pause(): void;
  resume(): void;
  send(frame: FrameInit): void;
}

/**
 * Receives a client's files, each where it belongs (a sendFile's, an Allocate's, a job's own, or
 * a Setup's depends file in its computation's directory), and answers each with FileDone.
 */
export function clientFileReceiver(options: ClientFileReceiverOptions): FileReceiver {
  const { computations, toNodes, allocations } = options;
  return new FileReceiver({
    rootFor: (chunk) => {
      if (chunk.nodeKey) return toNodes.toNodeRoot(chunk);
      const allocation = allocations.rootFor(chunk);
      if (allocation !== undefined) return allocation;
      const computation = computations.get(chunk.computeId ?? '');
      const jobId = Number(chunk.jobId ?? 0);
      if (jobId > 0 && computation?.added) {
        // A per-job file: in a directory of the job's own, removed when the job ends.
        const dir = jobDir(computation, jobId);
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        return dir;
      }
      if (!computation?.waiting?.has(chunk.path ?? '')) throw new Error(`no depends file ${chunk.path} is awaited for ${chunk.computeId}`);
      return computation.dir;
    },
    maxFileSize: options.maxFileSize,
    pause: () => options.pause(),
    resume: () => options.resume(),
    onDone: (transferId, result, about) => {
      if (toNodes.isToNode(transferId)) return void toNodes.forwardToNode(transferId, result);
      const failed = result instanceof Error ? result : undefined;
      options.send({ fileDone: failed ? { transferId, ok: false, error: failed.message } : { transferId, ok: true } });
      if (allocations.arrived(about.computeId, about.name, failed)) return;
      const computation = computations.get(about.computeId);
      if (about.jobId > 0 && computation?.added) {
        let files = computation.jobFiles.get(about.jobId);
        if (!files) computation.jobFiles.set(about.jobId, (files = { arrived: new Set() }));
        if (failed) files.failed ??= failed;
        else files.arrived.add(about.name);
        return;
      }
      computation?.arrived?.(about.name, failed);
    },
  });
}
