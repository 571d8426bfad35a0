import type { dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import { toAvailInfo } from './avail-info.js';
import type { NodeLink } from './node-link.js';
import type { NodePool } from './node-pool.js';
import type { ComputationSpec, NodeAllocator } from './types.js';

/** The CPUs a computation wants of a discovered node, and the allocator that chose it. */
export interface Allocation<Alloc> {
  cpus: number;
  allocator: Alloc;
}

/**
 * Chooses nodes for computations and sets computations up on them: asks a computation's
 * allocators about a node, sends the Setup with the files the node asks for (FileWant), and
 * reports a node that cannot run the computation (`nodeFailed`), which is then not asked again.
 */
export class ComputationSetup<Ref, Owner, Alloc extends NodeAllocator<Owner>> {
  /** `node key/computeId` of setups in progress (a node answers discovery more than once). */
  private readonly inProgress = new Set<string>();

  constructor(
    private readonly pool: NodePool,
    private readonly logger: Logger,
  ) {}

  /** Whether a computation is being set up on `link` now (the link must not be hung up meanwhile). */
  settingUp(link: NodeLink): boolean {
    for (const id of this.inProgress) if (id.startsWith(`${link.key}/`)) return true;
    return false;
  }

  /**
   * Asks each allocator of `spec` in order how many CPUs of the node to use: the first answer
   * above 0 wins, capped at what the node offers; an allocator that throws counts as 0 (logged).
   */
  allocate(
    spec: ComputationSpec<Ref, Owner, Alloc>,
    reply: Pick<dispy.DiscoveryReply, 'availInfo' | 'tcpPort' | 'tcpHost' | 'name' | 'cpus' | 'platform'>,
  ): Allocation<Alloc> | undefined {
    const availInfo = toAvailInfo(reply.availInfo);
    for (const allocator of spec.allocators) {
      if (allocator.port !== undefined && allocator.port !== reply.tcpPort) continue;
      try {
        const cpus = allocator.allocate(spec.owner, reply.tcpHost, reply.name, reply.cpus, availInfo, reply.platform);
        if (cpus > 0) return { cpus: Math.min(Math.floor(cpus), reply.cpus), allocator };
      } catch (error) {
        this.logger.error(`allocate() of nodes "${allocator.host}" threw: ${(error as Error).message}`);
      }
    }
    return undefined;
  }

  /**
   * Sets a computation up on a node; resolves with the node's answer when it succeeded,
   * `'later'` when the node cannot take it now (another computation has it alone, or it serves
   * its --max-clients: the node stays a candidate, the caller asks it again later), or
   * undefined when it failed (reported with `nodeFailed`; the node is excluded for the
   * computation, unless it went away) or is already in progress. A node left serving nothing is hung up on.
   */
  async setUp(
    link: NodeLink,
    spec: ComputationSpec<Ref, Owner, Alloc>,
    { cpus, allocator }: Allocation<Alloc>,
  ): Promise<dispy.SetupReply | 'later' | undefined> {
    const id = `${link.key}/${spec.computeId}`;
    if (this.inProgress.has(id)) return undefined;
    this.inProgress.add(id);
    try {
      const extras = (await spec.nodeExtras?.(allocator, link.info)) ?? { files: [] };
      const files = [...spec.files, ...extras.files];
      const answer = await link.connection.setup(
        {
          computeId: spec.computeId,
          name: spec.name,
          kind: spec.kind,
          source: spec.source,
          cpus,
          destPath: spec.destPath,
          cleanup: spec.cleanup,
          pulseInterval: spec.pulseInterval,
          definitions: spec.definitions,
          values: spec.values,
          files: files.map(({ name, size, sha256, mode }) => ({ name, size, sha256, mode })),
          setup: spec.setup,
          setupArgs: extras.setupArgs,
          cleanupFunction: spec.cleanupFunction,
          exclusive: spec.exclusive ?? false,
        },
        (want) => link.sendWanted(spec.computeId, files, want),
      );
      if (!answer.ok && answer.retry) {
        this.logger.info(`node ${link.info.name} (${link.key}) cannot take ${spec.name} now (${answer.error}); will ask again`);
        if (link.computeIds.size === 0) this.pool.hangUp(link);
        return 'later';
      }
      if (!answer.ok) throw new Error(`setup of ${spec.name} failed: ${answer.error}`);
      return answer;
    } catch (error) {
      // Whatever failed (its files, its setup there, the node going away), the cluster hears of
      // it and goes on without the node. A node that failed is not asked again (it would fail the
      // same way); one whose connection closed (a cut link, a restart) is set up again when
      // discovery finds it back.
      spec.events.nodeFailed(link.info, (error as Error).message);
      if (!link.connection.isClosed) (spec.excluded ??= new Set()).add(link.key);
      if (link.computeIds.size === 0) this.pool.hangUp(link);
      return undefined;
    } finally {
      this.inProgress.delete(id);
    }
  }
}
