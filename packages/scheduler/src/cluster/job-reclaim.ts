import type { Logger } from '@dispy/protocol/internal';
import type { SchedulingEngine } from '../engine/scheduling-engine.js';
import type { IdleWatch } from './idle-watch.js';
import type { JobLedger } from './job-ledger.js';
import { getOrCreateList } from './list-map.js';
import type { NodeLink } from './node-link.js';
import type { NodePool } from './node-pool.js';
import type { NodeAllocator, QueuedJob } from './types.js';

export interface JobReclaimOptions<Ref, Owner, Alloc extends NodeAllocator<Owner>> {
  engine: SchedulingEngine<QueuedJob<Ref>>;
  pool: NodePool;
  ledger: JobLedger<Ref, Owner, Alloc>;
  idle: IdleWatch;
  logger: Logger;
}

/** Takes back jobs a node has not started, for nodes with idle CPUs (the engine's `reclaim`, see SchedulingEngine.rebalance). */
export class JobReclaim<Ref, Owner, Alloc extends NodeAllocator<Owner>> {
  constructor(private readonly options: JobReclaimOptions<Ref, Owner, Alloc>) {}

  /** Asks a node to give back jobs it has not started. */
  reclaim(key: string, jobs: QueuedJob<Ref>[]): void {
    const { engine, pool, logger } = this.options;
    const link = pool.get(key);
    const byComputation = new Map<string, QueuedJob<Ref>[]>();
    for (const job of jobs) getOrCreateList(byComputation, job.computeId).push(job);
    for (const [computeId, asked] of byComputation) {
      const uids = asked.map((job) => job.uid);
      if (!link || link.state !== 'up') {
        engine.reclaimed(key, uids, []);
        continue;
      }
      logger.debug(`node ${key}: asking back ${uids.length} job(s) not started there, for nodes with idle CPUs`);
      link.connection.reclaim(computeId, uids).then(
        (dropped) => this.reclaimed(link, uids, dropped),
        (error: Error) => {
          logger.debug(`node ${key}: reclaim: ${error.message}`);
          this.reclaimed(link, uids, []);
        },
      );
    }
  }

  /** A node gave back `dropped` of the jobs asked: each goes back to the queue (or ends, if cancelled meanwhile). */
  private reclaimed(link: NodeLink, asked: number[], dropped: number[]): void {
    const { engine, ledger, idle } = this.options;
    for (const job of engine.reclaimed(link.key, asked, dropped)) {
      if (ledger.jobs.get(job.uid) !== job || job.nodeKey !== link.key) continue;
      if (job.cancelled) {
        ledger.end(job, 'cancelled', 'cancelled before it ran', link);
        continue;
      }
      ledger.requeue(job, link.info);
    }
    idle.check(link.key);
  }
}
