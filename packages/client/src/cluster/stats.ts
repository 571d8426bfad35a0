import type { DispyNode } from '../node/dispy-node.js';

/** One row of `stats()`. */
export interface NodeStats {
  ipAddr: string;
  name: string;
  cpus: number;
  jobsDone: number;
  /** Seconds the cluster's jobs ran on the node, each from its start to its end there (dispy's "Node Time"). */
  jobTime: number;
  /** Seconds of CPU used by the cluster's jobs on the node (0 for programs: not measured). */
  cpuTime: number;
  /** jobTime / jobsDone. */
  secPerJob: number;
  /** Bytes sent to and received from the node. */
  tx: number;
  rx: number;
}

/** What `stats()` returns (and prints). */
export interface ClusterStats {
  nodes: NodeStats[];
  totalJobs: number;
  /** Seconds all jobs ran on their nodes, start to end. */
  totalJobTime: number;
  /** Seconds of CPU used by all jobs. */
  totalCpuTime: number;
  /** Seconds since the cluster was created. */
  wallTime: number;
  /** totalJobTime / wallTime, as dispy computes it: jobs that sleep or wait count as much as busy ones. */
  speedup: number;
}

/** Computes the per-node table. */
export function clusterStats(nodes: Iterable<DispyNode>, startTime: number): ClusterStats {
  const rows: NodeStats[] = [];
  for (const node of nodes) {
    rows.push({
      ipAddr: node.ipAddr,
      name: node.name,
      cpus: node.cpus,
      jobsDone: node.jobsDone,
      jobTime: node.jobTime,
      cpuTime: node.cpuTime,
      secPerJob: node.jobsDone > 0 ? node.jobTime / node.jobsDone : 0,
      tx: node.tx,
      rx: node.rx,
    });
  }
  const totalJobTime = rows.reduce((sum, row) => sum + row.jobTime, 0);
  const wallTime = (Date.now() - startTime) / 1000;
  return {
    nodes: rows,
    totalJobs: rows.reduce((sum, row) => sum + row.jobsDone, 0),
    totalJobTime,
    totalCpuTime: rows.reduce((sum, row) => sum + row.cpuTime, 0),
    wallTime,
    speedup: wallTime > 0 ? totalJobTime / wallTime : 0,
  };
}

/** The table as dispy prints it. */
export function formatStats(stats: ClusterStats): string {
  const header = ['Node', 'CPUs', 'Jobs', 'Sec/Job', 'Node Time Sec', 'CPU Time Sec', 'Sent', 'Rcvd'];
  const lines = stats.nodes.map((row) => [
    `${row.ipAddr} (${row.name})`,
    String(row.cpus),
    String(row.jobsDone),
    row.secPerJob.toFixed(3),
    row.jobTime.toFixed(3),
    row.cpuTime.toFixed(3),
    bytes(row.tx),
    bytes(row.rx),
  ]);
  const widths = header.map((title, i) => Math.max(title.length, ...lines.map((line) => line[i]!.length)));
  const format = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ');
  return [
    '',
    format(header),
    widths.map((width) => '-'.repeat(width)).join('-+-'),
    ...lines.map(format),
    '',
    `Total job time: ${stats.totalJobTime.toFixed(3)} sec (CPU time: ${stats.totalCpuTime.toFixed(3)} sec), ` +
      `wall time: ${stats.wallTime.toFixed(3)} sec, speedup: ${stats.speedup.toFixed(3)}`,
    '',
  ].join('\n');
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} K`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} M`;
  return `${(n / 1024 / 1024 / 1024).toFixed(1)} G`;
}
