import type { Definition } from './worker-messages.js';

/** What a computation needs of whatever runs its jobs: worker processes or program spawns. */
export interface JobRunner {
  readonly size: number;
  start(): Promise<void>;
  run(jobId: number, args: Uint8Array, timeoutMs?: number, definitions?: Definition[]): void;
  cancel(jobId: number): boolean;
  runningJobs(): number[];
  resize(size: number): Promise<void>;
  runCleanup(cleanup: Definition): Promise<string | undefined>;
  close(): Promise<void>;
}
