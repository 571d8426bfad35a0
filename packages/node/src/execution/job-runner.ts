import type { Definition } from './worker-messages.js';

/**
 * A job's encoded argument list (value codec) in the pieces it arrived in from the client; they
 * are passed on to the worker as they are.
 */
export type EncodedArguments = readonly Buffer[];

/** What a computation needs of whatever runs its jobs: worker processes or program spawns. */
export interface JobRunner {
  readonly size: number;
  start(): Promise<void>;
  run(jobId: number, args: EncodedArguments, timeoutMs?: number, definitions?: Definition[]): void;
  cancel(jobId: number): boolean;
  runningJobs(): number[];
  resize(size: number): Promise<void>;
  runCleanup(cleanup: Definition): Promise<string | undefined>;
  close(): Promise<void>;
}
