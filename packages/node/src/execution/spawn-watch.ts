import childProcess, { ChildProcess } from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';

let spawned = false;
/** The marks (environment variables) that what the running job starts must carry; none between jobs. */
let marks: Readonly<Record<string, string>> | undefined;

/**
 * Notes, inside a worker, whether a job starts a process through `child_process` (any of its
 * functions, sync or not, by require or import), so that the node looks for what the job left
 * running (process-marks.ts) only after the jobs that started something: a scan of /proc after
 * every job would slow short jobs down. It also puts the job's marks into the new process's
 * environment, even one given as `env`: setting them in process.env for every job instead would
 * cost every short job two environment writes, whether it starts anything or not.
 * Installed once, before any computation's code runs.
 */
export function watchSpawns(): void {
  const prototype = ChildProcess.prototype as unknown as { spawn: (...args: unknown[]) => unknown };
  const spawn = prototype.spawn;
  // spawn, exec, execFile and fork all go through ChildProcess.prototype.spawn, with the
  // environment already turned into `envPairs`.
  prototype.spawn = function (this: ChildProcess, ...args: unknown[]) {
    spawned = true;
    const options = args[0] as { envPairs?: unknown } | undefined;
    if (marks && options && Array.isArray(options.envPairs)) options.envPairs = withMarks(options.envPairs as string[], marks);
    return spawn.apply(this, args);
  };
  const exports = childProcess as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of ['spawnSync', 'execSync', 'execFileSync']) {
    const original = exports[name]!;
    exports[name] = function (this: unknown, ...args: unknown[]) {
      spawned = true;
      return original.apply(this, marks ? withMarkedOptions(args, marks) : args);
    };
  }
  // `import { execSync } from 'node:child_process'` sees the wrapped functions too.
  syncBuiltinESMExports();
}

/**
 * From now until the next call, what jobs start carries `env` (undefined: nothing, between jobs).
 * Called twice per job: it only keeps `env`, which is turned into environment entries when a
 * process is started.
 */
export function markSpawns(env: Readonly<Record<string, string>> | undefined): void {
  marks = env;
}

/** Whether a process was started since the last call; clears the note. */
export function takeSpawned(): boolean {
  const was = spawned;
  spawned = false;
  return was;
}

function withMarks(envPairs: readonly string[], env: Readonly<Record<string, string>>): string[] {
  const names = Object.keys(env).map((name) => `${name}=`);
  const entries = Object.entries(env).map(([name, value]) => `${name}=${value}`);
  return [...envPairs.filter((pair) => !names.some((name) => pair.startsWith(name))), ...entries];
}

/** The arguments of a sync spawn function with the marks in their options' `env` (options added when none were given). */
function withMarkedOptions(args: unknown[], env: Readonly<Record<string, string>>): unknown[] {
  const last = args.at(-1);
  if (args.length > 1 && last !== null && typeof last === 'object' && !Array.isArray(last)) {
    const options = last as { env?: NodeJS.ProcessEnv };
    return [...args.slice(0, -1), { ...options, env: { ...(options.env ?? process.env), ...env } }];
  }
  return [...args, { env: { ...process.env, ...env } }];
}
