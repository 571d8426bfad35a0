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
  /**
   * Gives back jobs that no worker has started (the client sends them to another node): each one
   * dropped is forgotten, never run and never reported. Resolves with those dropped; the others
   * (started, ended, or not here) run or ran here as usual.
   */
  reclaim(jobIds: readonly number[]): Promise<number[]>;
  runningJobs(): number[];
  resize(size: number): Promise<void>;
  runCleanup(cleanup: Definition): Promise<string | undefined>;
  close(): Promise<void>;
}
