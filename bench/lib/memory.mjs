// Memory figures for the report's detail column (Linux only; elsewhere they are left out).
import { readFile } from 'node:fs/promises';

/** The peak resident memory (VmHWM) of process `pid` in MiB; undefined where /proc is missing. */
export async function peakRssMiB(pid) {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = /VmHWM:\s+(\d+)\s+kB/.exec(status);
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** "dispynode peak RSS N MiB", or '' where it cannot be read (for a detail column). */
export async function nodePeakRssNote(nodePid) {
  const peak = await peakRssMiB(nodePid);
  return peak === undefined ? '' : `dispynode peak RSS ${peak.toFixed(0)} MiB`;
}
