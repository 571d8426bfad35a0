import type { MonitorJob, MonitorSnapshot, MonitorSource } from '@dispy/protocol/internal';

/** A MonitorSource whose state a test sets, recording the actions asked of it. */
export class FakeSource implements MonitorSource {
  readonly actions: unknown[] = [];
  private readonly listeners = new Set<() => void>();
  state: MonitorSnapshot;
  jobs: MonitorJob[] = [];

  constructor(readonly name = 'fake') {
    this.state = {
      name,
      jobs: { submitted: 0, queued: 0, running: 0, finished: 0, failed: 0, cancelled: 0 },
      nodes: [],
      throughput: [],
    };
  }

  get watchers(): number {
    return this.listeners.size;
  }

  snapshot(): MonitorSnapshot {
    return structuredClone(this.state);
  }
  nodeJobs(): MonitorJob[] {
    return this.jobs;
  }
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  /** Says the state changed. */
  change(update: (state: MonitorSnapshot) => void): void {
    update(this.state);
    for (const listener of this.listeners) listener();
  }
  async cancelJob(job: string): Promise<boolean> {
    this.actions.push({ cancelJob: job });
    return true;
  }
  async setNodeCpus(node: string, cpus: number): Promise<number> {
    this.actions.push({ setNodeCpus: node, cpus });
    return cpus;
  }
  async allocateNode(host: string): Promise<boolean> {
    this.actions.push({ allocateNode: host });
    return true;
  }
  async deallocateNode(node: string): Promise<boolean> {
    this.actions.push({ deallocateNode: node });
    return true;
  }
  async closeNode(node: string): Promise<boolean> {
    this.actions.push({ closeNode: node });
    return true;
  }
}
