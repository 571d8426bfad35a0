import { lstat, readFile, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DispyError, ErrorCode } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';

const PID_FILE = 'dispynode.pid';

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
 * which) together with its workers, then removes everything under the prefix. Symbolic links
 * under it are removed, never followed.
 */
export async function cleanPrefix(prefix: string, logger: Logger): Promise<void> {
  // checkPrefix refused a symbolic link already; checked again here, as nothing may be removed through one.
  if ((await lstat(prefix)).isSymbolicLink()) throw new DispyError(ErrorCode.START, `--clean: the prefix ${prefix} is a symbolic link`);
  const pid = Number(await readFile(path.join(prefix, PID_FILE), 'utf8').catch(() => ''));
  if (pid > 0 && pid !== process.pid && (await isDispyProcess(pid))) {
    logger.info(`--clean: stopping the earlier dispynode (pid ${pid})`);
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone already
    }
    for (let i = 0; i < 50 && (await isDispyProcess(pid)); i++) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  for (const entry of await readdir(prefix).catch(() => [])) {
    await rm(path.join(prefix, entry), { recursive: true, force: true });
  }
}

/** Records this node's PID under the prefix, for a later `--clean`. */
export async function writePidFile(prefix: string): Promise<void> {
  await writeFile(path.join(prefix, PID_FILE), String(process.pid), { mode: 0o600 });
}

/** Removes the PID file under the prefix if it is this node's (a node that stopped cleanly leaves nothing to clean). */
export async function removePidFile(prefix: string): Promise<void> {
  const file = path.join(prefix, PID_FILE);
  const pid = await readFile(file, 'utf8').catch(() => '');
  if (Number(pid) === process.pid) await rm(file, { force: true });
}
