import type { dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { SchedulingEngine } from '../engine/scheduling-engine.js';
import type { ComputationSetup } from './computation-setup.js';
import type { JobLedger } from './job-ledger.js';
import type { Discovery } from './job-scheduler-options.js';
import type { NodeLink } from './node-link.js';
import type { NodePool } from './node-pool.js';
import type { ComputationSpec, NodeAllocator, QueuedJob } from './types.js';

export interface NodeArrivalOptions<Ref, Owner, Alloc extends NodeAllocator<Owner>> {
  engine: SchedulingEngine<QueuedJob<Ref>>;
  pool: NodePool;
  ledger: JobLedger<Ref, Owner, Alloc>;
  setups: ComputationSetup<Ref, Owner, Alloc>;
  finder: Pick<Discovery, 'found'>;
  logger: Logger;
  isClosed(): boolean;
}

/** A node answered discovery: the computations that want it are set up there, and it takes their jobs. */
export class NodeArrival<Ref, Owner, Alloc extends NodeAllocator<Owner>> {
  /** The address each node (by key) answered discovery from: where to ping it again when it goes away. */
  readonly foundAt = new Map<string, string>();

  constructor(private readonly options: NodeArrivalOptions<Ref, Owner, Alloc>) {}

  async discovered(reply: dispy.DiscoveryReply, address: string): Promise<void> {
    const { pool, ledger, setups, finder, logger } = this.options;
    if (this.options.isClosed()) return;
    const key = `${reply.tcpHost}:${reply.tcpPort}`;
    const existing = pool.get(key);
    // A node whose link is being reconnected is set up for nothing more until it is back.
    if (existing && existing.state !== 'up') return;
    if (!existing && (reply.busy || reply.cpus === 0)) {
      logger.debug(`node ${reply.name} (${key}) is busy; will ask again`);
      return;
    }
    // A node we are connected to counts us as its client: the CPUs it offers others (0) are ours
    // to give another computation of this scheduler (dispyscheduler adds them one by one).
    const offer = existing ? { ...reply, cpus: Math.min(existing.nodeCpus, reply.totalCpus || existing.info.totalCpus) } : reply;
    const wanted = [];
    for (const spec of ledger.computations.values()) {
      if (existing?.computeIds.has(spec.computeId) || spec.excluded?.has(key)) continue;
      const allocation = setups.allocate(spec, offer);
      if (allocation) wanted.push({ spec, allocation });
    }
    if (wanted.length === 0) {
      logger.debug(`node ${reply.name} (${key}): no computation here wants it (its nodes, or set up there already)`);
      return;
    }
    const link = existing ?? (await pool.connect(reply, ledger.jobs.size > 0));
    if (!link) return;
    this.foundAt.set(link.key, address);
    finder.found(address, true, reply.tcpPort);
    for (const { spec, allocation } of wanted) {
      const answer = await setups.setUp(link, spec, allocation);
      // Not now (the node is taken): pinging it goes on, with backoff, until it takes the computation.
      if (answer === 'later') finder.found(address, false, reply.tcpPort);
      else if (answer) this.serve(link, spec, answer);
    }
  }

  /** A computation is set up on a node: the node takes its jobs from now on. */
  private serve(link: NodeLink, spec: ComputationSpec<Ref, Owner, Alloc>, answer: dispy.SetupReply): void {
    const { engine, pool, ledger, logger } = this.options;
    if (!ledger.computations.has(spec.computeId) || this.options.isClosed() || pool.get(link.key) !== link) return;
    link.computeIds.add(spec.computeId);
    link.info.cpus = answer.cpus;
    if (spec.pulseInterval > 0) pool.watchPulses(link, spec.pulseInterval);
    logger.info(`node ${link.info.name} (${link.key}) serves ${answer.cpus} CPUs to ${spec.name}`);
    spec.events.nodeUp(link.info);
    engine.addNode(link.key, link.info.host, link.nodeCpus === 0 ? 0 : answer.cpus, spec.computeId);
    // A shared node may have said already how many of its CPUs are this client's to fill (NodeCpus).
    engine.setNodeShare(link.key, link.nodeCpus);
  }
}
