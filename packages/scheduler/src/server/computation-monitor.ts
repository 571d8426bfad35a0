import { ThroughputHistory, type MonitorJob, type MonitorSnapshot, type MonitorSource } from '@dispy/protocol/internal';
import type { ComputationEvents, JobOutcome, NodeInfo, SchedulerJob } from '../cluster/types.js';
import type { ClientJobRef } from './client-link.js';

type Job = SchedulerJob<ClientJobRef>;

/** What a computation's monitor view asks of dispyscheduler. */
export interface ComputationMonitorHost {
  nodesOf(computeId: string): NodeInfo[];
  /** Cancels a job as its client would (a queued one ends Cancelled at once, a running one is killed on its node). */
  cancel(job: Job): boolean;
  setNodeCpus(computeId: string, nodeKey: string, cpus: number): Promise<number>;
  allocate(computeId: string, host: string): Promise<void>;
  deallocate(computeId: string, nodeKey: string): boolean | Promise<boolean>;
  closeNode(computeId: string, nodeKey: string): Promise<boolean>;
}

/** A computation's counters on one node. */
interface NodeCounters {
  jobsDone: number;
  jobTime: number;
  cpuTime: number;
  updateTime: number;
}

/**
 * One computation of dispyscheduler as `@dispy/monitor` shows it: it counts the computation's
 * jobs from its events on their way to the client (`tap`), and acts through the scheduler.
 */
export class ComputationMonitor implements MonitorSource {
  private submitted = 0;
  private readonly ended = { finished: 0, failed: 0, cancelled: 0 };
  private readonly throughput = new ThroughputHistory();
  /** Jobs not ended, by uid: for cancelling from the page. */
  private readonly jobs = new Map<number, Job>();
  /** Jobs a worker started, by uid, with their start time. */
  private readonly running = new Map<number, number>();
  private readonly perNode = new Map<string, NodeCounters>();
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly computeId: string,
    readonly name: string,
    private readonly host: ComputationMonitorHost,
  ) {}

  /** A job of the computation was submitted. */
  jobSubmitted(job: Job): void {
    this.submitted++;
    this.jobs.set(job.uid, job);
    this.changed();
  }

  /** A queued job was cancelled (it had no event: its client was told directly). */
  jobCancelled(job: Job): void {
    this.end(job, 'cancelled');
    this.changed();
  }

  /** The computation's events, counted on their way to `inner` (the client's link). */
  tap(inner: ComputationEvents<ClientJobRef>): ComputationEvents<ClientJobRef> {
    return {
      nodeUp: (node) => {
        this.touch(node);
        inner.nodeUp(node);
      },
      nodeDown: (node, lost, why) => {
        for (const job of lost) this.end(job, 'cancelled');
        this.perNode.delete(node.key);
        this.changed();
        inner.nodeDown(node, lost, why);
      },
      nodeFailed: (node, error) => {
        this.changed();
        inner.nodeFailed(node, error);
      },
      nodeAvailInfo: (node) => {
        this.touch(node);
        inner.nodeAvailInfo(node);
      },
      jobStarted: (job, node) => {
        this.changed();
        inner.jobStarted(job, node);
      },
      jobsRunning: (started, node) => {
        for (const { job, startTime } of started) this.running.set(job.uid, startTime > 0 ? startTime : Date.now());
        this.touch(node);
        inner.jobsRunning(started, node);
      },
      jobProvisional: (job, result, node) => inner.jobProvisional(job, result, node),
      jobDone: (job, outcome, node) => {
        this.done(job, outcome, node);
        inner.jobDone(job, outcome, node);
      },
      jobFailed: (job, status, why, node) => {
        this.end(job, status === 'cancelled' ? 'cancelled' : 'failed');
        this.changed();
        inner.jobFailed(job, status, why, node);
      },
      jobRequeued: (job, from) => {
        this.running.delete(job.uid);
        this.changed();
        inner.jobRequeued(job, from);
      },
    };
  }

  snapshot(): MonitorSnapshot {
    const ended = this.ended.finished + this.ended.failed + this.ended.cancelled;
    return {
      name: this.name,
      jobs: {
        submitted: this.submitted,
        queued: Math.max(0, this.submitted - ended - this.running.size),
        running: this.running.size,
        ...this.ended,
      },
      throughput: this.throughput.series(),
      nodes: this.host.nodesOf(this.computeId).map((node) => {
        const counters = this.perNode.get(node.key);
        const jobsDone = counters?.jobsDone ?? 0;
        return {
          key: node.key,
          name: node.name,
          ipAddr: node.host,
          port: node.port,
          cpus: node.cpus,
          availCpus: node.totalCpus,
          busy: [...this.running.keys()].filter((uid) => this.jobs.get(uid)?.nodeKey === node.key).length,
          jobsDone,
          secPerJob: jobsDone > 0 ? counters!.jobTime / jobsDone : 0,
          cpuTime: counters?.cpuTime ?? 0,
          tx: node.tx,
          rx: node.rx,
          availInfo: node.availInfo,
          updateTime: counters?.updateTime ?? node.lastHeard,
        };
      }),
    };
  }

  nodeJobs(nodeKey: string): MonitorJob[] {
    const jobs: MonitorJob[] = [];
    for (const [uid, startTime] of this.running) {
      const job = this.jobs.get(uid);
      if (job?.nodeKey === nodeKey) jobs.push({ key: String(uid), id: String(job.ref.jobId), startTime });
    }
    return jobs;
  }

  onChange(listener: () => void): () => void {
    const entry = () => listener();
    this.listeners.add(entry);
    return () => this.listeners.delete(entry);
  }

  async cancelJob(jobKey: string): Promise<boolean> {
    const job = this.jobs.get(Number(jobKey));
    return job !== undefined && this.host.cancel(job);
  }

  setNodeCpus(nodeKey: string, cpus: number): Promise<number> {
    const node = this.host.nodesOf(this.computeId).find((info) => info.key === nodeKey);
    if (!node || !Number.isInteger(cpus)) return Promise.resolve(-1);
    const wanted = cpus < 0 ? node.totalCpus + cpus : Math.min(cpus, node.totalCpus);
    return wanted < 1 ? Promise.resolve(-1) : this.host.setNodeCpus(this.computeId, nodeKey, wanted);
  }

  async allocateNode(host: string): Promise<boolean> {
    await this.host.allocate(this.computeId, host);
    return true;
  }

  async deallocateNode(nodeKey: string): Promise<boolean> {
    return this.host.deallocate(this.computeId, nodeKey);
  }

  closeNode(nodeKey: string): Promise<boolean> {
    return this.host.closeNode(this.computeId, nodeKey);
  }

  private done(job: Job, outcome: JobOutcome, node: NodeInfo): void {
    const counters = this.countersOf(node);
    counters.jobsDone++;
    counters.cpuTime += outcome.cpuTime;
    if (outcome.startTime > 0 && outcome.endTime >= outcome.startTime) counters.jobTime += (outcome.endTime - outcome.startTime) / 1000;
    counters.updateTime = Date.now();
    this.end(job, outcome.status === 'finished' ? 'finished' : outcome.status === 'cancelled' ? 'cancelled' : 'failed');
    this.changed();
  }

  private end(job: Job, how: 'finished' | 'failed' | 'cancelled'): void {
    if (!this.jobs.delete(job.uid)) return;
    this.running.delete(job.uid);
    this.ended[how]++;
    this.throughput.record();
  }

  private touch(node: NodeInfo): void {
    this.countersOf(node).updateTime = Date.now();
    this.changed();
  }

  private countersOf(node: NodeInfo): NodeCounters {
    let counters = this.perNode.get(node.key);
    if (!counters) {
      counters = { jobsDone: 0, jobTime: 0, cpuTime: 0, updateTime: Date.now() };
      this.perNode.set(node.key, counters);
    }
    return counters;
  }

  private changed(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch {
        // A monitor's listener only marks the computation for its next push.
      }
    }
  }
}
