import type { dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { SchedulingEngine } from '../engine/scheduling-engine.js';
import type { ComputationSetup } from './computation-setup.js';
import type { IdleWatch } from './idle-watch.js';
import type { JobLedger } from './job-ledger.js';
import type { NodeLink } from './node-link.js';
import { restoreCpus } from './node-loss.js';
import type { NodePool } from './node-pool.js';
import type { LocalFile, NodeAllocator, QueuedJob } from './types.js';

export interface NodeOperationsOptions<Ref, Owner, Alloc extends NodeAllocator<Owner>> {
  engine: SchedulingEngine<QueuedJob<Ref>>;
  pool: NodePool;
  ledger: JobLedger<Ref, Owner, Alloc>;
  setups: ComputationSetup<Ref, Owner, Alloc>;
  idle: IdleWatch;
  logger: Logger;
  /** Points discovery at an allocator's nodes, then pings them now. */
  lookFor(allocator: Alloc): Promise<void>;
}

/**
 * What a cluster does to its computation on one node (allocateNode, deallocateNode, closeNode,
 * setNodeCpus, sendFile), as a `JobScheduler` does it, and the release of a node for a computation.
 */
export class NodeOperations<Ref, Owner, Alloc extends NodeAllocator<Owner>> {
  constructor(private readonly options: NodeOperationsOptions<Ref, Owner, Alloc>) {}

  /** Adds a way of choosing nodes to a computation; nodes already known are asked again. */
  async allocate(computeId: string, allocator: Alloc): Promise<void> {
    const spec = this.options.ledger.computations.get(computeId);
    if (!spec) return;
    spec.allocators.push(allocator);
    const deallocated = [...(spec.excluded ?? [])];
    spec.excluded?.clear();
    // A node deallocated but still set up takes the computation's jobs again when the new
    // allocator wants it (discovery never sets a computation up twice on one node).
    const { pool, setups, engine, logger } = this.options;
    for (const key of deallocated) {
      const link = pool.get(key);
      if (!link || link.state !== 'up' || !link.computeIds.has(computeId)) continue;
      const { host, port, name, totalCpus, platform } = link.info;
      const one = { ...spec, allocators: [allocator] };
      if (!setups.allocate(one, { tcpHost: host, tcpPort: port, name, cpus: totalCpus, platform, availInfo: undefined })) continue;
      engine.addNode(link.key, host, link.nodeCpus === 0 ? 0 : link.info.cpus, computeId);
      engine.setNodeShare(link.key, link.nodeCpus);
      logger.info(`node ${name} (${key}) takes jobs of ${spec.name} again`);
    }
    await this.options.lookFor(allocator);
  }

  /** Stops sending a computation's jobs to a node; its running jobs finish. */
  deallocate(computeId: string, nodeKey: string): boolean {
    const link = this.options.pool.get(nodeKey);
    const spec = this.options.ledger.computations.get(computeId);
    if (!link || !spec || !link.computeIds.has(computeId)) return false;
    (spec.excluded ??= new Set()).add(nodeKey);
    this.options.engine.removeComputation(nodeKey, computeId);
    return true;
  }

  /**
   * Closes a computation on one node: no new jobs go there; its running jobs are terminated
   * (`terminatePending`) or finish first. The node is then released for this computation.
   * Resolves false when the node does not serve the computation.
   */
  async closeNode(computeId: string, nodeKey: string, terminatePending: boolean): Promise<boolean> {
    if (!this.deallocate(computeId, nodeKey)) return false;
    const { pool, idle } = this.options;
    const link = pool.get(nodeKey)!;
    if (!terminatePending) await idle.whenIdle(nodeKey, computeId);
    if (pool.get(nodeKey) !== link) return true;
    await this.release(link, computeId, terminatePending, 'the node was closed for this computation');
    return true;
  }

  /**
   * Uses `cpus` CPUs of a node for a computation (at most what the node offers); resolves with
   * the CPUs now used, or -1 when the node does not serve the computation, refuses, does not
   * answer or goes away (logged).
   */
  async setNodeCpus(computeId: string, nodeKey: string, cpus: number): Promise<number> {
    const { pool, logger } = this.options;
    const link = pool.get(nodeKey);
    if (!link || !link.computeIds.has(computeId)) return -1;
    let answer: dispy.SetCpusReply;
    try {
      answer = await link.connection.setCpus(computeId, cpus);
    } catch (error) {
      logger.warn((error as Error).message);
      return -1;
    }
    if (answer.error) {
      logger.warn(`node ${link.key}: ${answer.error}`);
      return -1;
    }
    link.info.cpus = answer.cpus;
    restoreCpus(this.options.engine, link);
    return answer.cpus;
  }

  /** Copies a file to a node, into the computation's directory (cluster.sendFile); false when the node does not serve it. */
  async sendFile(computeId: string, nodeKey: string, file: LocalFile): Promise<boolean> {
    const link = this.options.pool.get(nodeKey);
    if (!link || !link.computeIds.has(computeId)) return false;
    await link.sendFiles(computeId, [file]);
    return true;
  }

  /** Closes a computation on a node (best effort: a node that does not answer is gone anyway); a node left with none is hung up on. */
  async release(link: NodeLink, computeId: string, terminatePending: boolean, why: string): Promise<void> {
    const { engine, pool, ledger, setups, idle, logger } = this.options;
    // Idle connections are unref'd; keep this one alive until the node has answered.
    link.connection.setActive(true);
    await link.connection.closeComputation(computeId, terminatePending).catch((error: Error) => logger.debug(error.message));
    link.computeIds.delete(computeId);
    engine.removeComputation(link.key, computeId);
    ledger.computations.get(computeId)?.events.nodeDown(link.info, [], why);
    // Another computation being set up there keeps the link (dispyscheduler: a client arriving as another leaves).
    if (link.computeIds.size === 0 && !setups.settingUp(link)) {
      pool.hangUp(link);
      engine.removeNode(link.key);
      idle.check(link.key);
    }
  }
}
