import { DispyError, ErrorCode } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { SchedulingEngine } from '../engine/scheduling-engine.js';
import type { IdleWatch } from './idle-watch.js';
import type { JobLedger } from './job-ledger.js';
import { DEFAULT_MAX_RETRIES, type Discovery } from './job-scheduler-options.js';
import { reattachComputations } from './link-recovery.js';
import type { NodeLink } from './node-link.js';
import type { NodePool } from './node-pool.js';
import type { NodeAllocator, QueuedJob } from './types.js';

export interface NodeLossOptions<Ref, Owner, Alloc extends NodeAllocator<Owner>> {
  engine: SchedulingEngine<QueuedJob<Ref>>;
  pool: NodePool;
  ledger: JobLedger<Ref, Owner, Alloc>;
  idle: IdleWatch;
  finder: Pick<Discovery, 'found' | 'pingNow'>;
  /** The address each node (by key) answered discovery from: where to ping it again when it goes away. */
  foundAt: ReadonlyMap<string, string>;
  logger: Logger;
  isClosed(): boolean;
}

/**
 * What a `JobScheduler` does when a node goes away (its jobs go by the dead-node rules) or its
 * link is lost and comes back (its computations are taken back and their jobs settled).
 */
export class NodeLoss<Ref, Owner, Alloc extends NodeAllocator<Owner>> {
  constructor(private readonly options: NodeLossOptions<Ref, Owner, Alloc>) {}

  nodeGone(link: NodeLink, error?: Error): void {
    const { engine, ledger, idle, logger } = this.options;
    const why = `node ${link.info.name} (${link.key}) went away${error ? `: ${error.message}` : ''}`;
    if (!this.options.isClosed()) logger.warn(why);
    const lostBy = this.settleLost(engine.removeNode(link.key), link, why);
    for (const computeId of link.computeIds) {
      ledger.computations.get(computeId)?.events.nodeDown(link.info, lostBy.get(computeId) ?? [], why);
    }
    idle.check(link.key);
    this.lookAgain(link);
  }

  /**
   * Pings a node that went away again, so that discovery sets it up anew when it is back: at the
   * address it answered discovery from, which is where pings reach it (its `tcpHost`, an
   * `--ext-host`, may be a relay or a NAT's address that does not answer them).
   */
  private lookAgain(link: NodeLink): void {
    if (this.options.isClosed()) return;
    const { finder, foundAt } = this.options;
    finder.found(foundAt.get(link.key) ?? link.info.host, false, link.info.port);
    finder.pingNow();
  }

  /**
   * The dead-node rules, for jobs a node had when it died (or lost their computation), already
   * out of the engine: a reentrant job (not pinned) goes back to the queue for another node, at
   * most `maxRetries` times, then ends terminated with the reasons; the others are returned by
   * computation, to be reported lost (`nodeDown`, which ends them cancelled).
   */
  private settleLost(jobs: QueuedJob<Ref>[], link: NodeLink, why: string): Map<string, QueuedJob<Ref>[]> {
    const { ledger } = this.options;
    const lostBy = new Map<string, QueuedJob<Ref>[]>();
    for (const job of jobs) {
      const spec = ledger.computations.get(job.computeId);
      if (spec?.reentrant && job.pinnedHost === undefined) {
        (job.failures ??= []).push(why);
        const maxRetries = spec.maxRetries ?? DEFAULT_MAX_RETRIES;
        if (job.failures.length <= maxRetries) {
          ledger.requeue(job, link.info);
        } else {
          const reasons = job.failures.map((reason, index) => `${index + 1}. ${reason}`).join('; ');
          ledger.end(
            job,
            'terminated',
            `its node died ${job.failures.length} times, more than maxRetries (${maxRetries}): ${reasons}`,
            link,
          );
        }
      } else {
        job.nodeKey = undefined;
        ledger.forget(job);
        lostBy.set(job.computeId, [...(lostBy.get(job.computeId) ?? []), job]);
      }
    }
    return lostBy;
  }

  /** A node's link was lost (not by us): its jobs stay where they are while it is reconnected; it takes no new ones. */
  linkLost(link: NodeLink, error?: Error): void {
    const { engine, logger } = this.options;
    const running = engine.runningOn(link.key).length;
    logger.warn(
      `lost the link to node ${link.info.name} (${link.key})${error ? `: ${error.message}` : ''}; ` +
        `its ${running} job${running === 1 ? '' : 's'} keep${running === 1 ? 's' : ''} running there; reconnecting for up to ${link.zombieSeconds} s`,
    );
    engine.setNodeCpus(link.key, 0);
  }

  /** A lost link has a new connection: takes its computations back and settles their jobs, then gives it jobs again. */
  async linkBack(link: NodeLink): Promise<void> {
    const { engine, ledger, logger } = this.options;
    await reattachComputations(link, {
      logger,
      sentTo: (at, computeId) => engine.runningOn(at.key).filter((job) => job.computeId === computeId),
      resend: (job, at) => {
        engine.jobDone(at.key, job.uid);
        ledger.requeue(job, at.info);
      },
      cancelledBeforeSent: (job, at) => ledger.end(job, 'cancelled', 'cancelled before it ran', at),
      lostComputation: (at, computeId, jobs, why) => this.lostComputation(at, computeId, jobs, why),
    });
    if (link.connection.isClosed) throw new DispyError(ErrorCode.NO_ANSWER, `node ${link.key} closed the new connection`);
    restoreCpus(engine, link, true);
  }

  /**
   * A node came back without a computation of ours (it restarted, or its zombie interval passed):
   * the jobs of that computation still out there go by the dead-node rules, and the node stops
   * serving it (with none left, it is hung up on; discovery may set it up again).
   */
  private async lostComputation(link: NodeLink, computeId: string, jobs: QueuedJob<Ref>[], why: string): Promise<void> {
    const { engine, ledger, pool, idle, logger } = this.options;
    logger[jobs.length > 0 ? 'warn' : 'info'](why);
    for (const job of jobs) engine.jobDone(link.key, job.uid);
    const lost = this.settleLost(jobs, link, why).get(computeId) ?? [];
    link.computeIds.delete(computeId);
    engine.removeComputation(link.key, computeId);
    ledger.computations.get(computeId)?.events.nodeDown(link.info, lost, why);
    // What the node kept of it (saved replies, a computation not live) is of no use any more.
    await link.connection.closeComputation(computeId, true).catch((error: Error) => logger.debug(error.message));
    if (link.computeIds.size === 0 && pool.get(link.key) === link) {
      pool.hangUp(link);
      engine.removeNode(link.key);
      idle.check(link.key);
      this.lookAgain(link);
    }
  }
}

/**
 * Gives the engine the CPUs of a node as they are now, unless its link is down: a job
 * dispatched before its computations are taken back would not be among the jobs the node
 * holds, and would be sent twice. Its computation's CPUs, none when it takes no new jobs
 * (NodeCpus 0); with fewer than those to fill (NodeCpus: a node shared with other clients, or
 * offering fewer CPUs), it ranks as that much more loaded.
 */
export function restoreCpus(
  engine: Pick<SchedulingEngine<QueuedJob>, 'setNodeCpus' | 'setNodeShare'>,
  link: NodeLink,
  coming = false,
): void {
  if (link.state !== 'up' && !coming) return;
  engine.setNodeCpus(link.key, link.nodeCpus === 0 ? 0 : link.info.cpus);
  engine.setNodeShare(link.key, link.nodeCpus);
}
