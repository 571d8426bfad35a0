import type { ChildProcess } from 'node:child_process';

/** Path of the built dispyscheduler CLI. */
export const DISPYSCHEDULER_BIN: string;

/** A dispyscheduler started by startScheduler. */
export interface SchedulerProcess {
  host: string;
  /** Where SharedJobClusters connect (--scheduler-port). */
  port: number;
  child: ChildProcess;
  /** Its directory of files (--dest-path), removed on stop. */
  destPath: string;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
  /** Everything it wrote to stderr so far (its log). */
  readonly log: string;
  /** Resolves when the log matches `pattern`; rejects after `timeoutMs` or if it exits. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Sends `signal` (default SIGTERM), waits for exit (SIGKILL after 5 s), removes its directory. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface StartSchedulerOptions {
  host: string;
  /** --scheduler-port; default: a free port. */
  port?: number;
  /** -n: the nodes' addresses. */
  nodes: string[];
  nodePort: number;
  /** -p (its discovery port); default: a free port (give one with `netns`). */
  dispyPort?: number;
  /** Run it inside this network namespace (`ip netns exec`; testing/network-namespaces.ts). */
  netns?: string;
  nodeSecret?: string;
  clusterSecret?: string;
  /** More dispyscheduler flags. */
  args?: string[];
}

export function startScheduler(options: StartSchedulerOptions): Promise<SchedulerProcess>;
export function stopAllSchedulers(): Promise<void>;
