import { statfs } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import type { AvailInfo } from '@dispy/protocol';

export type { AvailInfo } from '@dispy/protocol';

let previous = cpuTimes();

function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const cpu of os.cpus()) {
    idle += cpu.times.idle;
    total += cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.irq + cpu.times.idle;
  }
  return { idle, total };
}

async function swapFreePercent(): Promise<number> {
  try {
    const meminfo = await readFile('/proc/meminfo', 'utf8');
    const total = Number(/SwapTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? 0);
    const free = Number(/SwapFree:\s+(\d+)/.exec(meminfo)?.[1] ?? 0);
    return total > 0 ? (100 * free) / total : 100;
  } catch {
    return 100;
  }
}

/** Measures the node's availability with Node's own APIs (no native modules). */
export async function measureAvailInfo(dir: string): Promise<AvailInfo> {
  const now = cpuTimes();
  const total = now.total - previous.total;
  const cpu = total > 0 ? (100 * (now.idle - previous.idle)) / total : 100;
  previous = now;
  let disk = 0;
  try {
    const fsStats = await statfs(dir);
    disk = fsStats.bavail * fsStats.bsize;
  } catch {
    // the prefix may not exist yet
  }
  return { cpu, memory: os.freemem(), disk, swap: await swapFreePercent() };
}
