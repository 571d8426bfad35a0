import type { ChildProcess } from 'node:child_process';

/** Path of the built dispynode CLI. */
export const DISPYNODE_BIN: string;

/** A dispynode started by startNode. */
export interface NodeProcess {
  host: string;
  port: number;
  child: ChildProcess;
  destPathPrefix: string;
  /** Whether `stop()` removes `destPathPrefix` (it made it: no `destPathPrefix` option). */
  ownsPrefix: boolean;
  /** Everything the node wrote to stderr so far (its log). */
  readonly log: string;
  /** Resolves when the log matches `pattern`; rejects after `timeoutMs` or if the node exits. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** PIDs of the node's worker processes now (its children but its watchdog). */
  workerPids(): number[];
  /** SIGTERM, wait for exit (SIGKILL after 5 s), remove its directory (if it made it). */
  stop(): Promise<void>;
}

export interface StartNodeOptions {
  /** Its -i; may be omitted (every interface) with `netns`. */
  host: string | undefined;
  /** Run it inside this network namespace (`ip netns exec`; testing/network-namespaces.ts). */
  netns?: string;
  /** Default: a free port (give one with `netns`). */
  port?: number;
  /** Default 2. */
  cpus?: number;
  secret?: string;
  /** The node's directory (a node started again on it finds what the last one saved); the caller removes it. Default: a new temporary one, removed on stop. */
  destPathPrefix?: string;
  /** More dispynode flags. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Flags for Node itself before the script (--cpu-prof, --inspect), which NODE_OPTIONS may not carry. */
  execArgv?: string[];
}

/** A TCP port free on `host` whose UDP twin is free too. */
export function freePort(host: string): Promise<number>;
/** Starts `dispynode -i HOST -p PORT -c CPUS --daemon --dest-path-prefix DIR` and waits until it serves. */
export function startNode(options: StartNodeOptions): Promise<NodeProcess>;
/** Stops every node still running. */
export function stopAllNodes(): Promise<void>;
/** PIDs of the direct children of `pid`. */
export function childPids(pid: number): number[];
/** True while a process with this PID exists. */
export function isAlive(pid: number): boolean;
