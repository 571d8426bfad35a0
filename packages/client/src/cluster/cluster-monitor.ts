import { inspect } from 'node:util';
import { decodeValue } from '@dispy/protocol';
import type { MonitorJob, MonitorSnapshot, MonitorSource } from '@dispy/protocol/internal';
import type { SchedulerJob } from '@dispy/scheduler';
import type { DispyJob } from '../job/dispy-job.js';
import type { DispyNode } from '../node/dispy-node.js';
import type { JobLedger } from './job-ledger.js';

/** Longest arguments text shown for a job. */
const MAX_ARGS_TEXT = 300;

/** What a cluster lends its monitor view: its ledger, and the public operations it already has. */
export interface ClusterMonitorHost {
  readonly name: string;
  readonly ledger: JobLedger;
  /** Nodes serving the cluster, their counters refreshed. */
  nodes(): DispyNode[];
  /** The cluster's jobs started on a node (key host:port). */
  runningOn(nodeKey: string): Array<SchedulerJob<DispyJob>>;
  cancel(job: DispyJob): Promise<number>;
  setNodeCpus(node: DispyNode, cpus: number): Promise<number>;
  allocateNode(host: string): Promise<number>;
  deallocateNode(node: DispyNode): Promise<number>;
  closeNode(node: DispyNode): Promise<number>;
}

/** A JobCluster as `@dispy/monitor` sees it (see `MonitorSource`). */
export class ClusterMonitor implements MonitorSource {
  constructor(private readonly host: ClusterMonitorHost) {}

  get name(): string {
    return this.host.name;
  }

  snapshot(): MonitorSnapshot {
    return {
      name: this.host.name,
      jobs: this.host.ledger.jobCounts(),
      throughput: this.host.ledger.throughput.series(),
      nodes: this.host.nodes().map((node) => ({
        key: nodeKey(node),
        name: node.name,
        ipAddr: node.ipAddr,
        port: node.port,
        cpus: node.cpus,
        availCpus: node.availCpus,
        busy: node.busy,
        jobsDone: node.jobsDone,
        secPerJob: node.jobsDone > 0 ? node.jobTime / node.jobsDone : 0,
        cpuTime: node.cpuTime,
        tx: node.tx,
        rx: node.rx,
        availInfo: node.availInfo,
        updateTime: node.updateTime,
      })),
    };
  }

  nodeJobs(key: string): MonitorJob[] {
    const { ledger } = this.host;
    return this.host
      .runningOn(key)
      .filter((job) => ledger.isRunning(job.ref))
      .map((job) => {
        const args = ledger.jobArgs.get(job.ref);
        return {
          key: String(job.uid),
          id: idText(job.ref.id),
          args: args && argsText(args),
          startTime: job.ref.startTime ?? 0,
        };
      });
  }

  onChange(listener: () => void, options: { jobArgs?: boolean } = {}): () => void {
    const { ledger } = this.host;
    const stop = ledger.watch(listener);
    if (options.jobArgs) ledger.keepArgs++;
    let stopped = false;
    return () => {
      if (stopped) return;
      stopped = true;
      stop();
      if (options.jobArgs) ledger.keepArgs--;
    };
  }

  async cancelJob(jobKey: string): Promise<boolean> {
    for (const job of this.host.ledger.jobs.values()) {
      if (String(job.uid) === jobKey) return (await this.host.cancel(job.ref)) === 0;
    }
    return false;
  }

  async setNodeCpus(key: string, cpus: number): Promise<number> {
    const node = this.host.ledger.nodes.get(key);
    return node ? this.host.setNodeCpus(node, cpus) : -1;
  }

  async allocateNode(host: string): Promise<boolean> {
    return (await this.host.allocateNode(host)) === 0;
  }

  async deallocateNode(key: string): Promise<boolean> {
    const node = this.host.ledger.nodes.get(key);
    return node !== undefined && (await this.host.deallocateNode(node)) === 0;
  }

  async closeNode(key: string): Promise<boolean> {
    const node = this.host.ledger.nodes.get(key);
    return node !== undefined && (await this.host.closeNode(node)) === 0;
  }
}

function nodeKey(node: DispyNode): string {
  return `${node.ipAddr}:${node.port}`;
}

/** The arguments as one line of text, cut short; what cannot be decoded says so. */
function argsText(encoded: Uint8Array): string {
  let text: string;
  try {
    const args = decodeValue(encoded) as unknown[];
    text = args
      .map((arg) => inspect(arg, { depth: 2, breakLength: Infinity, maxArrayLength: 20, maxStringLength: MAX_ARGS_TEXT }))
      .join(', ');
  } catch {
    return '(arguments that cannot be decoded)';
  }
  return text.length > MAX_ARGS_TEXT ? `${text.slice(0, MAX_ARGS_TEXT)}…` : text;
}

/** The job's `id` as the program set it, as text (empty when unset). */
function idText(id: unknown): string {
  if (id === undefined || id === null) return '';
  return typeof id === 'string' ? id : inspect(id, { depth: 1, breakLength: Infinity });
}
