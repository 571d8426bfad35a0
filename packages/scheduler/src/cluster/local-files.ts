import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { LocalFile } from './types.js';

/**
 * Name (base name), size and mode of files to send; their sha256 is computed only when needed
 * (as they are sent, or to compare with a node's copy). Rejects with the error of the first file
 * that cannot be read (its `path` names it).
 */
export async function describeFiles(paths: readonly string[]): Promise<LocalFile[]> {
  return Promise.all(
    paths.map(async (file) => {
      const info = await stat(file);
      return { name: path.basename(file), path: file, size: info.size, mode: info.mode & 0o777 };
    }),
  );
}
