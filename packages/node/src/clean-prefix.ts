import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
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
 * `--clean`: stops a node that an earlier run left behind under `prefix` (its PID file says
 * which) together with its workers, then removes everything under the prefix.
 */
export async function cleanPrefix(prefix: string, logger: Logger): Promise<void> {
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
