import path from 'node:path';
import { DispyError } from '../errors/dispy-error.js';
import { ErrorCode } from '../errors/error-codes.js';

/**
 * Resolves a peer-given relative path under `root`, refusing absolute paths and anything that
 * escapes `root` (`..`), so a peer can never name a file outside the directory it was given.
 * @throws DispyError (code `DISPY_ERR_FILE`) naming the path and why
 */
export function confine(root: string, relative: string): string {
  if (typeof relative !== 'string' || relative.length === 0) throw new DispyError(ErrorCode.FILE, 'a file name is required');
  if (path.isAbsolute(relative) || /^[a-zA-Z]:[\\/]/.test(relative)) {
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
