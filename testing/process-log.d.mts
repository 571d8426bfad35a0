import type { ChildProcess } from 'node:child_process';

export interface WatchedLog {
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  /** Everything the process wrote to stderr so far. */
  readonly log: string;
  /** Resolves when the log matches `pattern`; rejects after `timeoutMs` or if the process exits first. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

/** Collects the stderr of a dispy process a test started (and drains its stdout). */
export function watchLog(child: ChildProcess, who: string): WatchedLog;
