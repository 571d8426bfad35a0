import { randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import type { Logger } from '@dispy/protocol/internal';

/*
 * How a node finds every process its jobs started, however they were started (plain, detached,
 * reparented to init when their parent exited): by a mark in their environment, which children
 * inherit. Every worker and program the node starts has NODE_MARK_VARIABLE=<this process's
 * token> in its environment; while a job runs, its worker puts both marks, JOB_MARK_VARIABLE being
 * the job's own, into the environment of every process the job starts through child_process, even
 * one given an `env` of its own (spawn-watch.ts), and their descendants inherit them. A process
 * that clears its environment later (`env -i`) escapes this; the node also kills the children of a
 * worker it stops, but not their descendants once reparented.
 */

/** Set in every worker and program, and inherited by what they start: this node process's token. */
export const NODE_MARK_VARIABLE = 'DISPY_NODE_MARK';
/** In the environment of what a job starts: `<node token>.<worker pid>.<job id>`. */
export const JOB_MARK_VARIABLE = 'DISPY_JOB_MARK';

let token = randomBytes(12).toString('hex');

/**
 * The token that marks the processes started by this node process from now on: random, so a
 * process of another node (or another program) never has it.
 */
export function nodeToken(): string {
  return token;
}

/**
 * Makes a new token (when a new watchdog starts), so that processes started from now on are
 * never taken for those of an earlier server in this process, which its watchdog may be reaping.
 */
export function renewNodeToken(): string {
  token = randomBytes(12).toString('hex');
  return token;
}

/** The environment `env` with this node's mark (for a worker or a program). */
export function nodeMarkEnv(env: NodeJS.ProcessEnv, nodeToken: string): NodeJS.ProcessEnv {
  return { ...env, [NODE_MARK_VARIABLE]: nodeToken };
}

/** The mark of one job run by the worker `workerPid`, as the worker sets it (worker-runtime.ts). */
export function jobMark(nodeToken: string, workerPid: number, jobId: number): string {
  return `${nodeToken}.${workerPid}.${jobId}`;
}

/** A mark to look for: an environment entry `NAME=VALUE`, or `NAME=VALUE...` when `prefix`. */
export interface Mark {
  variable: string;
  value: string;
  /** Also matches values that start with `value`. */
  prefix?: boolean;
}

/** Whether an environment, as /proc/PID/environ gives it (entries ending in NUL), holds `mark`. */
export function environHasMark(environ: Buffer, mark: Mark): boolean {
  const entry = Buffer.from(`${mark.variable}=${mark.value}${mark.prefix ? '' : '\0'}`);
  for (let at = environ.indexOf(entry); at >= 0; at = environ.indexOf(entry, at + 1)) {
    if (at === 0 || environ[at - 1] === 0) return true;
  }
  return false;
}

/** PIDs of the processes (other than this one and `except`) whose environment holds `mark`; Linux only (none elsewhere). */
export async function findMarked(mark: Mark, except: ReadonlySet<number> = new Set()): Promise<number[]> {
  const entries = await readdir('/proc').catch(() => [] as string[]);
  const found: number[] = [];
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid || except.has(pid)) continue;
    // Unreadable (another user's process, or gone meanwhile): not ours, or nothing to kill.
    const environ = await readFile(`/proc/${pid}/environ`).catch(() => undefined);
    if (environ && environHasMark(environ, mark)) found.push(pid);
  }
  return found;
}

/** Most passes of killMarked: each kills what the last left (processes forked meanwhile). */
const KILL_ROUNDS = 5;

/**
 * SIGKILLs every process whose environment holds `mark` (never this process or those in
 * `except`), again until none is left (at most a few passes: a process may fork while the
 * others die). Resolves with how many were killed.
 */
export async function killMarked(mark: Mark, except: ReadonlySet<number> = new Set()): Promise<number> {
  let killed = 0;
  for (let round = 0; round < KILL_ROUNDS; round++) {
    const pids = await findMarked(mark, except);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        // gone already
      }
    }
  }
  return killed;
}

/**
 * Kills, in the background, what jobs left running (killMarked), and lets the owner wait until
 * every such kill is done (when its computation closes).
 */
export class Reaper {
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly logger?: Logger) {}

  /** Kills every process marked with `mark` (`what` says whose, for the log). */
  reap(mark: Mark, what: string): void {
    const reaping = killMarked(mark)
      .then((killed) => {
        if (killed > 0) this.logger?.debug(`killed ${killed} process(es) left by ${what}`);
      })
      .catch((error: Error) => this.logger?.warn(`could not stop the processes left by ${what}: ${error.message}`))
      .finally(() => this.pending.delete(reaping));
    this.pending.add(reaping);
  }

  /** Resolves when every kill started so far (and those they led to) is done. */
  async settled(): Promise<void> {
    for (let pass = 0; pass < 10 && this.pending.size > 0; pass++) await Promise.all(this.pending);
  }
}
