import childProcess, { ChildProcess } from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';

let spawned = false;

/**
 * Notes, inside a worker, whether a job starts a process through `child_process` (any of its
 * functions, sync or not, by require or import), so that the node looks for what the job left
 * running (process-marks.ts) only after the jobs that started something: a scan of /proc after
 * every job would slow short jobs down. Installed once, before any computation's code runs.
 */
export function watchSpawns(): void {
  const prototype = ChildProcess.prototype as unknown as { spawn: (...args: unknown[]) => unknown };
  const spawn = prototype.spawn;
  // spawn, exec, execFile and fork all go through ChildProcess.prototype.spawn.
  prototype.spawn = function (this: ChildProcess, ...args: unknown[]) {
    spawned = true;
    return spawn.apply(this, args);
  };
  const exports = childProcess as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of ['spawnSync', 'execSync', 'execFileSync']) {
    const original = exports[name]!;
    exports[name] = function (this: unknown, ...args: unknown[]) {
      spawned = true;
      return original.apply(this, args);
    };
  }
  // `import { execSync } from 'node:child_process'` sees the wrapped functions too.
  syncBuiltinESMExports();
}

/** Whether a process was started since the last call; clears the note. */
export function takeSpawned(): boolean {
  const was = spawned;
  spawned = false;
  return was;
}
