import { DispyError, ErrorCode, type Frame } from '@dispy/protocol';
import { NodeLink } from '../cluster/node-link.js';
import type { ComputationSpec, NodeAllocator } from '../cluster/types.js';
import type { RemoteNodeOps } from './remote-node-ops.js';
import type { RemoteSchedulerOptions } from './remote-scheduler.js';

/** Attempts at setting the computation up when the connection is lost before the SetupReply. */
const SETUP_ATTEMPTS = 3;
/** Milliseconds before the next attempt, times the attempt's number. */
const SETUP_RETRY_MS = 500;

/** What connecting a SharedJobCluster to dispyscheduler needs. */
export interface SchedulerConnection<Ref, Owner, Alloc extends NodeAllocator<Owner>> {
  options: RemoteSchedulerOptions;
  /** The computation to set up there. */
  spec: ComputationSpec<Ref, Owner, Alloc>;
  /** Sends the computation's NodeAllocates first, when its allocators carry more than host names. */
  nodeOps: Pick<RemoteNodeOps<Ref, Owner, Alloc>, 'hasExtras' | 'sendAllocations'>;
  onFrame(link: NodeLink, frame: Frame, attachment?: Buffer[]): void;
  onClose(link: NodeLink, error?: Error): void;
  /** The connection being opened and set up (its frames count: one may follow its SetupReply in the same read); undefined once done. */
  opening(link: NodeLink | undefined): void;
  /** The cluster was closed meanwhile. */
  isClosed(): boolean;
}

/**
 * Connects and sets the computation up. A connection lost after it authenticated and before
 * the SetupReply (the scheduler may have set the computation up: a Setup again replaces it) is
 * tried again, SETUP_ATTEMPTS times in all; a refusal, or a scheduler that cannot be reached,
 * fails at once.
 */
export async function connectToScheduler<Ref, Owner, Alloc extends NodeAllocator<Owner>>(
  to: SchedulerConnection<Ref, Owner, Alloc>,
): Promise<NodeLink> {
  for (let attempt = 1; ; attempt++) {
    const lost = { afterOpen: false };
    try {
      return await connectOnce(to, lost);
    } catch (error) {
      const refused = DispyError.isInstance(error) && (error.code === ErrorCode.START || error.code === ErrorCode.CLOSED);
      if (!lost.afterOpen || refused || to.isClosed() || attempt >= SETUP_ATTEMPTS) throw error;
      to.options.logger.debug(
        `dispyscheduler ${to.options.host}:${to.options.port}: the connection was lost while setting up (${(error as Error).message}); trying again`,
      );
      await new Promise((resolve) => setTimeout(resolve, SETUP_RETRY_MS * attempt));
    }
  }
}

/** One attempt of `connectToScheduler`; `lost.afterOpen` says whether its connection had authenticated and then went. */
async function connectOnce<Ref, Owner, Alloc extends NodeAllocator<Owner>>(
  to: SchedulerConnection<Ref, Owner, Alloc>,
  lost: { afterOpen: boolean },
): Promise<NodeLink> {
  const { spec, nodeOps } = to;
  const { host, port, secret, tls, clientName, localAddress, connect } = to.options;
  const where = `${host}:${port}`;
  const link: NodeLink = new NodeLink({
    host,
    port,
    name: 'dispyscheduler',
    totalCpus: 0,
    platform: '',
    localAddress,
    secret,
    tls,
    clientName,
    onFrame: (_link, frame, attachment) => to.onFrame(link, frame, attachment),
    onClose: (_link, error) => to.onClose(link, error),
    connect,
    peerKind: 'dispyscheduler',
  });
  to.opening(link);
  let opened = false;
  try {
    await link.connection.open();
    opened = true;
    if (await nodeOps.hasExtras(spec)) await nodeOps.sendAllocations(link, spec, spec.computeId, spec.allocators);
    const answer = await link.connection.setup(
      {
        computeId: spec.computeId,
        name: spec.name,
        kind: spec.kind,
        source: spec.source,
        destPath: spec.destPath,
        cleanup: spec.cleanup,
        definitions: spec.definitions,
        values: spec.values,
        files: spec.files.map(({ name, size, mode }) => ({ name, size, mode })),
        setup: spec.setup,
        cleanupFunction: spec.cleanupFunction,
        nodes: spec.allocators.map((allocator) => allocator.host),
        reentrant: spec.reentrant,
        maxRetries: spec.maxRetries,
        exclusive: spec.exclusive ?? false,
      },
      (want) => link.sendWanted(spec.computeId, spec.files, want),
    );
    if (!answer.ok) throw new DispyError(ErrorCode.START, `dispyscheduler ${where} refused the computation: ${answer.error}`);
  } catch (error) {
    lost.afterOpen = opened && link.connection.isClosed;
    link.close();
    throw error;
  } finally {
    to.opening(undefined);
  }
  if (to.isClosed()) {
    link.close();
    throw new DispyError(ErrorCode.CLOSED, 'the cluster was closed');
  }
  to.options.logger.info(`computation ${spec.name} set up at dispyscheduler ${where}`);
  link.computeIds.add(spec.computeId);
  return link;
}
