import path from 'node:path';
import { DispyError, ErrorCode, type dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import { DEFAULT_MAX_FILE_SIZE, DEFAULT_MAX_JOB_FILES_SIZE } from './job-scheduler-options.js';
import type { ChunkSink, JobFilesConfig, NodeLink } from './node-link.js';

/** Where files sent by jobs land on a client, and how much of them it takes. */
export interface JobFilesOptions {
  fileDir: string;
  maxFileSize?: number;
  maxJobFilesSize?: number;
  logger: Logger;
}

/**
 * The rules for files sent by jobs (dispySendFile), the same for a JobCluster (from its nodes)
 * and a SharedJobCluster (relayed by dispyscheduler): accepted only for a job of ours that
 * `runsThere` (on the node that sends it), never into `node_modules` or a dot-directory or
 * dot-file (`.git`, `.npmrc`), never replacing a file that no earlier job of this cluster sent;
 * sizes limited, confined to `fileDir` (by FileReceiver).
 */
export function jobFilesConfig(
  options: JobFilesOptions,
  runsThere: (link: NodeLink, chunk: dispy.FileChunk) => boolean,
  relay?: (link: NodeLink) => ChunkSink,
): JobFilesConfig {
  const placed = new Set<string>();
  return {
    dir: path.resolve(options.fileDir),
    maxFileSize: options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE,
    maxJobSize: options.maxJobFilesSize ?? DEFAULT_MAX_JOB_FILES_SIZE,
    logger: options.logger,
    accept: (link, chunk) => {
      if (!runsThere(link, chunk)) {
        throw new DispyError(
          ErrorCode.FILE,
          `no job ${Number(chunk.jobId)} of this client runs on ${chunk.nodeKey || link.key}; file refused`,
        );
      }
      const name = chunk.path
        .split(/[\\/]/)
        .find((part) => part === 'node_modules' || (part.startsWith('.') && part !== '.' && part !== '..'));
      if (name !== undefined) {
        throw new DispyError(
          ErrorCode.FILE,
          `path ${JSON.stringify(chunk.path)} names ${JSON.stringify(name)}; files of jobs may not go there`,
        );
      }
    },
    mayReplace: (target) => placed.has(target),
    placed: (target) => placed.add(target),
    relay,
  };
}
