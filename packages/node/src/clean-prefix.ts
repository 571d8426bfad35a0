import { lstat, readFile, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DispyError, ErrorCode } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import { NODE_MARK_VARIABLE, killMarked, nodeToken } from './execution/process-marks.js';

/**
 * What a node records under its prefix for a later `--clean`, one item a line: its PID, the token
 * that marks every process it starts (its workers and what their jobs start, see
 * execution/process-marks.ts), and its start time (field 22 of /proc/PID/stat), so that another
 * program given the same PID later is never taken for it. Older nodes wrote the PID alone.
 */
const PID_FILE = 'dispynode.pid';

/** The start time of process `pid` (clock ticks since boot), or undefined when it is gone (or not Linux). */
async function startTime(pid: number | 'self'): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

/** True when process `pid` runs this node's code (a dispynode or one of its workers). */
async function isDispyProcess(pid: number): Promise<boolean> {
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return /dispynode|worker-runtime|@dispy\/node/.test(cmdline);
  } catch {
    return false;
  }
}

/**
 * Refuses a prefix that another user could control: one that is a symbolic link (whoever made
 * it chooses where computations' files go and what --clean removes), is not owned by this
 * node's user, or is group- or world-writable; and one under a directory that a user other than
 * root and this one owns, or that others may write to without the sticky bit (they could put
 * another directory in its place).
 * @throws DispyError (code `DISPY_ERR_START`) naming the path and the fix
 */
export async function checkPrefix(prefix: string): Promise<void> {
  const uid = process.getuid?.();
  if (uid === undefined) return; // no POSIX owners (Windows)
  const fix = 'remove it and let dispynode make it (mode 0700), or choose another directory with --dest-path-prefix';
  const refuse = (why: string) => new DispyError(ErrorCode.START, `the prefix ${prefix} ${why}; ${fix}`);
  const info = await lstat(prefix);
  if (info.isSymbolicLink()) throw refuse('is a symbolic link, which whoever made it can point anywhere');
  if (!info.isDirectory()) throw refuse('is not a directory');
  if (info.uid !== uid) throw refuse(`belongs to uid ${info.uid}, not to this node's user (uid ${uid})`);
  if (info.mode & 0o022) throw refuse(`is writable by its group or by others (mode ${(info.mode & 0o7777).toString(8)})`);
  let dir = await realpath(path.dirname(prefix));
  for (let depth = 0; depth < 4096; depth++) {
    const parent = await lstat(dir);
    if (parent.uid !== 0 && parent.uid !== uid) {
      throw refuse(`lies under ${dir}, which belongs to uid ${parent.uid}, who could put another directory in its place`);
    }
    if (parent.mode & 0o022 && !(parent.mode & 0o1000)) {
      throw refuse(`lies under ${dir}, which others may write to (mode ${(parent.mode & 0o7777).toString(8)}, no sticky bit)`);
    }
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
}

/**
 * `--clean`: stops a node that an earlier run left behind under `prefix` (its PID file says
 * which, if it still runs: same PID, same start time, our code), then SIGKILLs every process that
 * carries that node's mark (its workers, even those that outlived it, and whatever their jobs
 * started), then removes everything under the prefix. Symbolic links under it are removed, never
 * followed.
 */
export async function cleanPrefix(prefix: string, logger: Logger): Promise<void> {
  // checkPrefix refused a symbolic link already; checked again here, as nothing may be removed through one.
  if ((await lstat(prefix)).isSymbolicLink()) throw new DispyError(ErrorCode.START, `--clean: the prefix ${prefix} is a symbolic link`);
  const [pidText = '', token = '', started = ''] = (await readFile(path.join(prefix, PID_FILE), 'utf8').catch(() => '')).split('\n');
  const pid = Number(pidText);
  const sameProcess = async () => (started === '' || (await startTime(pid)) === started) && (await isDispyProcess(pid));
  if (pid > 0 && pid !== process.pid && (await sameProcess())) {
    logger.info(`--clean: stopping the earlier dispynode (pid ${pid})`);
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone already
    }
    for (let i = 0; i < 50 && (await sameProcess()); i++) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // A token of our own is this process's servers' (tests run several in one process): never theirs to kill.
  if (/^[0-9a-f]{8,}$/.test(token) && token !== nodeToken()) {
    const killed = await killMarked({ variable: NODE_MARK_VARIABLE, value: token });
    if (killed > 0)
      logger.info(`--clean: killed ${killed} process(es) left by the earlier dispynode (its workers and what their jobs started)`);
  }
  for (const entry of await readdir(prefix).catch(() => [])) {
    await rm(path.join(prefix, entry), { recursive: true, force: true });
  }
}

/** Records this node's PID, the mark of its processes and its start time under the prefix, for a later `--clean`. */
export async function writePidFile(prefix: string): Promise<void> {
  const lines = [String(process.pid), nodeToken(), (await startTime('self')) ?? ''];
  await writeFile(path.join(prefix, PID_FILE), lines.join('\n'), { mode: 0o600 });
}

/** Removes the PID file under the prefix if it is this node's (a node that stopped cleanly leaves nothing to clean). */
export async function removePidFile(prefix: string): Promise<void> {
  const file = path.join(prefix, PID_FILE);
  const pid = (await readFile(file, 'utf8').catch(() => '')).split('\n')[0];
  if (Number(pid) === process.pid) await rm(file, { force: true });
}
