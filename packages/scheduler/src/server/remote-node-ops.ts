import { DispyError, ErrorCode, type dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { NodeLink } from '../cluster/node-link.js';
import type { ComputationSpec, LocalFile, NodeAllocator, NodeInfo } from '../cluster/types.js';

export interface RemoteNodeOpsOptions<Ref, Owner, Alloc extends NodeAllocator<Owner>> {
  /** Nodes serving the computation now, by key. */
  nodes: Map<string, NodeInfo>;
  /** The connection to dispyscheduler now. */
  link(): NodeLink | undefined;
  /** The connection, once the computation is set up (connecting if it is not). */
  linkNow(): Promise<NodeLink>;
  /** The computation (set up before any node operation). */
  spec(): ComputationSpec<Ref, Owner, Alloc>;
  logger: Logger;
  /** dispyscheduler's address, for messages. */
  where: string;
}

/**
 * A SharedJobCluster's node operations (allocateNode, deallocateNode, closeNode, setNodeCpus,
 * sendFile), done by dispyscheduler on its computation as JobScheduler does them on its own.
 */
export class RemoteNodeOps<Ref, Owner, Alloc extends NodeAllocator<Owner>> {
  /** Numbers the NodeAllocates sent to the scheduler (their files go to `nodes/<n>/`). */
  private nextAllocation = 1;

  constructor(private readonly options: RemoteNodeOpsOptions<Ref, Owner, Alloc>) {}

  /** Adds a way of choosing nodes (allocateNode): the scheduler asks its nodes again. */
  async allocate(computeId: string, allocator: Alloc): Promise<void> {
    const link = await this.options.linkNow();
    const spec = this.options.spec();
    spec.allocators.push(allocator);
    await this.sendAllocations(link, spec, computeId, [allocator]);
  }

  /** Stops sending the computation's jobs to a node; its running jobs finish. False when the node does not serve it. */
  async deallocate(computeId: string, nodeKey: string): Promise<boolean> {
    const link = this.options.link();
    if (!link || !this.options.nodes.has(nodeKey)) return false;
    const reply = await link.connection.request('deallocate', { deallocate: { computeId, nodeKey } }, 'deallocateReply');
    return reply.ok === true;
  }

  /** Closes the computation on one node (its running jobs terminated, or finishing first). False when the node does not serve it. */
  async closeNode(computeId: string, nodeKey: string, terminatePending: boolean): Promise<boolean> {
    const link = this.options.link();
    if (!link || !this.options.nodes.has(nodeKey)) return false;
    const reply = await link.connection.request(
      `closeNode(${nodeKey})`,
      { close: { computeId, terminatePending, nodeKey } },
      'closeReply',
      // Without terminatePending, the node closes once its running jobs are done, however long they take.
      { timeoutMs: terminatePending ? undefined : 0x7fff_ffff },
    );
    return !reply.notServed;
  }

  /**
   * Asks the scheduler to use `cpus` CPUs of a node for the computation. It does so with
   * --cooperative (or for an exclusive computation), as in dispy; otherwise it changes nothing and
   * answers the CPUs used there. Resolves those CPUs, or -1 when the node does not serve the
   * computation, refuses, or does not answer (logged).
   */
  async setNodeCpus(computeId: string, nodeKey: string, cpus: number): Promise<number> {
    const link = this.options.link();
    const node = this.options.nodes.get(nodeKey);
    if (!link || !node) return -1;
    let reply: dispy.SetCpusReply;
    try {
      reply = (await link.connection.request(
        'setNodeCpus',
        { setCpus: { computeId, cpus, nodeKey } },
        'setCpusReply',
      )) as dispy.SetCpusReply;
    } catch (error) {
      this.options.logger.warn((error as Error).message);
      return -1;
    }
    if (reply.error) {
      this.options.logger.warn(`dispyscheduler ${this.options.where}: ${reply.error}`);
      return -1;
    }
    if (reply.unchanged)
      this.options.logger.info(`setNodeCpus(${nodeKey}): dispyscheduler is not --cooperative; the CPUs of shared nodes stay as they are`);
    node.cpus = reply.cpus;
    return reply.cpus;
  }

  /** Copies a file to a node (through the scheduler) into the computation's directory; false when the node does not serve it. */
  async sendFile(computeId: string, nodeKey: string, file: LocalFile): Promise<boolean> {
    const link = this.options.link();
    if (!link || !this.options.nodes.has(nodeKey)) return false;
    try {
      await (
        await link.streamFile(computeId, file, 0, nodeKey)
      ).arrived;
    } catch (error) {
      if (DispyError.isInstance(error) && error.code === ErrorCode.NO_COMPUTATION) return false;
      throw error;
    }
    return true;
  }

  /**
   * Sends NodeAllocates to the scheduler (Allocate) with their per-node depends files and setup
   * arguments, which it gives to the nodes each chooses. Before the Setup (when some carry
   * such extras or CPUs), they replace the Setup's `nodes`. A NodeAllocate's own `allocate`
   * method cannot run at the scheduler: its host, port, cpus, depends and setupArgs are what count.
   */
  async sendAllocations(link: NodeLink, spec: ComputationSpec<Ref, Owner, Alloc>, computeId: string, allocators: Alloc[]): Promise<void> {
    const files: LocalFile[] = [];
    const nodes: dispy.INodeAllocation[] = [];
    for (const allocator of allocators) {
      const extras = (await spec.nodeExtras?.(allocator)) ?? { files: [] };
      const at = this.nextAllocation++;
      const named = extras.files.map((file) => ({ ...file, name: `nodes/${at}/${file.name}` }));
      files.push(...named);
      nodes.push({
        host: allocator.host,
        port: allocator.port ?? 0,
        cpus: allocator.cpus ?? 0,
        files: named.map(({ name, size, mode }) => ({ name, size, mode })),
        setupArgs: extras.setupArgs,
      });
    }
    const reply = await link.connection.request('allocateNode', { allocate: { computeId, nodes } }, 'allocateReply', {
      timeoutMs: 10 * 60_000,
      sendFiles: (want) => link.sendWanted(computeId, files, want),
    });
    if (!reply.ok) throw new DispyError(ErrorCode.START, `dispyscheduler ${this.options.where} refused the nodes: ${reply.error}`);
  }

  /** Whether a computation's allocators carry anything that `Setup.nodes` (host names) cannot say. */
  async hasExtras(spec: ComputationSpec<Ref, Owner, Alloc>): Promise<boolean> {
    for (const allocator of spec.allocators) {
      if ((allocator.cpus ?? 0) !== 0) return true;
      const extras = await spec.nodeExtras?.(allocator);
      if (extras && (extras.files.length > 0 || extras.setupArgs !== undefined)) return true;
    }
    return false;
  }
}
