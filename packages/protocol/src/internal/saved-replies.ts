import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { dispy } from '../schema/schema.js';

/** The folder under the prefix that holds the replies saved for clients gone away, one folder per computation. */
export const SAVED_REPLIES_DIR = 'saved-replies';

const META_FILE = 'computation.json';
const REPLY_SUFFIX = '.reply';

/** What a computation's folder of saved replies says of it (its `computation.json`). */
export interface SavedMeta {
  computeId: string;
  /** When its client was last heard (epoch ms). */
  lastHeard: number;
  /** When its saved replies expire: `lastHeard` plus the node's zombie interval (epoch ms). */
  expires: number;
}

/** A computation's folder name: its id when that is a plain name, else a hash of it (ids come from clients). */
function folderName(computeId: string): string {
  return /^[A-Za-z0-9_-]{1,64}$/.test(computeId) ? computeId : createHash('sha256').update(computeId).digest('hex');
}

/**
 * Writes `data` to `file` so that a crash at any instant leaves the old file or the new one,
 * whole: a temporary file beside it, synced, renamed over it, then the directory synced (so the
 * rename itself survives a power cut).
 */
async function writeAtomically(file: string, data: Uint8Array): Promise<void> {
  const temp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDir(path.dirname(file));
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The replies of one computation saved on disk while its client is away
 * (`<prefix>/saved-replies/<compute id>/`): one file per job (`<job id>.reply`, a
 * `dispy.JobReply` in protobuf) and `computation.json` (its id, when its client was last heard,
 * when the replies expire). The folder lies beside the computation's directory, never in it, so
 * the computation's own cleanup leaves it alone.
 */
export class SavedReplies {
  readonly dir: string;
  private made = false;

  constructor(
    prefix: string,
    readonly computeId: string,
  ) {
    this.dir = path.join(prefix, SAVED_REPLIES_DIR, folderName(computeId));
  }

  /** Records when the client was last heard and when the replies expire (atomically). */
  async writeMeta(meta: Omit<SavedMeta, 'computeId'>): Promise<void> {
    await this.makeDir();
    const text = JSON.stringify({ computeId: this.computeId, ...meta } satisfies SavedMeta);
    await writeAtomically(path.join(this.dir, META_FILE), Buffer.from(text));
  }

  /** Saves a job's reply; resolves once it is on disk for good (synced, renamed, directory synced). */
  async save(reply: dispy.IJobReply): Promise<void> {
    await this.makeDir();
    await writeAtomically(this.replyFile(Number(reply.jobId)), dispy.JobReply.encode(reply).finish());
  }

  /** Reads a saved reply back (undefined when it is not there any more). */
  async read(jobId: number): Promise<dispy.JobReply | undefined> {
    const data = await readFile(this.replyFile(jobId)).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    return data && dispy.JobReply.decode(data);
  }

  /** The jobs whose replies are saved, in order. */
  async jobIds(): Promise<number[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names
      .filter((name) => /^\d+\.reply$/.test(name))
      .map((name) => Number(name.slice(0, -REPLY_SUFFIX.length)))
      .sort((a, b) => a - b);
  }

  /** Forgets one saved reply. */
  async remove(jobId: number): Promise<void> {
    await rm(this.replyFile(jobId), { force: true });
  }

  /** Deletes the folder with every saved reply. */
  async removeAll(): Promise<void> {
    this.made = false;
    await rm(this.dir, { recursive: true, force: true });
  }

  private replyFile(jobId: number): string {
    return path.join(this.dir, `${jobId}${REPLY_SUFFIX}`);
  }

  private async makeDir(): Promise<void> {
    if (this.made) return;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // A job of the same user could have put a link here: saved replies never go through one.
    if (!(await lstat(this.dir)).isDirectory()) throw new Error(`${this.dir} is not a directory`);
    this.made = true;
  }
}

/**
 * The folders of saved replies under `prefix`, with what their `computation.json` says; a
 * folder without a readable one (a crash before it was written) comes with `meta` undefined.
 */
export async function scanSavedReplies(prefix: string): Promise<{ dir: string; meta?: SavedMeta }[]> {
  const root = path.join(prefix, SAVED_REPLIES_DIR);
  const found: { dir: string; meta?: SavedMeta }[] = [];
  for (const entry of await readdir(root, { withFileTypes: true }).catch(() => [])) {
    const dir = path.join(root, entry.name);
    if (!entry.isDirectory()) {
      found.push({ dir });
      continue;
    }
    const meta = await readFile(path.join(dir, META_FILE), 'utf8')
      .then((text) => JSON.parse(text) as SavedMeta)
      .catch(() => undefined);
    const valid = meta && typeof meta.computeId === 'string' && Number.isFinite(meta.lastHeard) && Number.isFinite(meta.expires);
    found.push({ dir, meta: valid ? meta : undefined });
  }
  return found;
}
