import { lstat, mkdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import { DispyError } from '../errors/dispy-error.js';
import { ErrorCode } from '../errors/error-codes.js';

/**
 * Resolves a peer-given relative path under `root`, refusing absolute paths and anything that
 * escapes `root` (`..`), so a peer can never name a file outside the directory it was given.
 * This looks at the text only; `confineReal` also checks what is on the disk.
 * @throws DispyError (code `DISPY_ERR_FILE`) naming the path and why
 */
export function confine(root: string, relative: string): string {
  if (typeof relative !== 'string' || relative.length === 0) throw new DispyError(ErrorCode.FILE, 'a file name is required');
  if (relative.includes('\0')) throw new DispyError(ErrorCode.FILE, `path ${JSON.stringify(relative)} contains a NUL character`);
  if (path.isAbsolute(relative) || /^[a-zA-Z]:[\\/]/.test(relative) || relative.startsWith('\\')) {
    throw new DispyError(ErrorCode.FILE, `path ${JSON.stringify(relative)} must be relative`);
  }
  if (relative.split(/[\\/]/).includes('..'))
    throw new DispyError(ErrorCode.FILE, `path ${JSON.stringify(relative)} must not contain ".."`);
  const base = path.resolve(root);
  const resolved = path.resolve(base, relative);
  if (resolved === base || !resolved.startsWith(base + path.sep)) {
    throw new DispyError(ErrorCode.FILE, `path ${JSON.stringify(relative)} escapes its directory`);
  }
  return resolved;
}

export interface ConfineRealOptions {
  /** What the path must be when it exists: a regular file (default) or a directory. */
  want?: 'file' | 'dir';
  /** Make the missing directories on the way (and the last one, with `want: 'dir'`), one at a time. */
  makeDirs?: boolean;
  /** Mode of the directories made (before the umask); default 0o755. */
  dirMode?: number;
}

/**
 * `confine`, then checked on the disk: every component from `root` down is looked at with lstat,
 * and none may be a symbolic link (the path could lead anywhere through it), nor anything but a
 * directory on the way. With `makeDirs`, missing directories are made one component at a time,
 * each checked once it exists. `root` itself is trusted (it is the caller's, not the peer's).
 * @returns the absolute path under the real path of `root`; the last component may not exist
 * @throws DispyError (code `DISPY_ERR_FILE`) naming the path and the component refused
 */
export async function confineReal(root: string, relative: string, options: ConfineRealOptions = {}): Promise<string> {
  const lexical = confine(root, relative);
  const { want = 'file', makeDirs = false, dirMode = 0o755 } = options;
  const parts = path.relative(path.resolve(root), lexical).split(path.sep);
  let current = await realpath(root).catch((error: NodeJS.ErrnoException) => {
    throw new DispyError(ErrorCode.FILE, `directory ${root} for ${JSON.stringify(relative)} is unusable: ${error.message}`, {
      cause: error,
    });
  });
  for (let i = 0; i < parts.length; i++) {
    current = path.join(current, parts[i]!);
    const last = i === parts.length - 1;
    const shown = JSON.stringify(parts.slice(0, i + 1).join('/'));
    let info = await lstatOrNothing(current);
    if (!info) {
      if (last && want === 'file') return current;
      if (!makeDirs) return path.join(current, ...parts.slice(i + 1));
      await mkdir(current, { mode: dirMode }).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw new DispyError(ErrorCode.FILE, `cannot make ${shown}: ${error.message}`, { cause: error });
      });
      info = await lstatOrNothing(current);
    }
    if (!info || info.isSymbolicLink()) {
      throw new DispyError(ErrorCode.FILE, `path ${JSON.stringify(relative)} goes through ${shown}, a symbolic link; refused`);
    }
    if (last && want === 'file') {
      if (!info.isFile()) throw new DispyError(ErrorCode.FILE, `path ${JSON.stringify(relative)} exists and is not a regular file`);
    } else if (!info.isDirectory()) {
      throw new DispyError(ErrorCode.FILE, `path ${JSON.stringify(relative)} goes through ${shown}, which is not a directory`);
    }
  }
  return current;
}

async function lstatOrNothing(file: string) {
  try {
    return await lstat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DispyError(ErrorCode.FILE, `cannot look at ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** Mode bits a peer may give a file: read and write for the owner, read for the others, and execute for all or none. */
export function maskMode(mode: number): number {
  return mode & 0o111 ? 0o755 : 0o644;
}
