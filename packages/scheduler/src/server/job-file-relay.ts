import type { dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { ChunkSink, NodeLink } from '../cluster/node-link.js';
import type { SchedulerJob } from '../cluster/types.js';
import type { NodeConnection } from '../session/node-connection.js';
import type { ClientJobRef, ClientLink } from './client-link.js';

/** Bytes queued toward a client before the node's connection stops being read until they drain. */
const HIGH_WATER = 8 * 1024 * 1024;

/** One file a node's job sends, on its way to the job's client. */
interface Relayed {
  /** Its transfer id on the node's connection, and on the client's. */
  readonly nodeId: number;
  readonly clientId: number;
  readonly client: ClientLink;
  readonly connection: NodeConnection;
  readonly about: { path: string; computeId: string; jobId: number };
  /** Chunks are no longer forwarded (the client answered, or is gone): the rest are dropped. */
  dropped: boolean;
}

/**
 * dispyscheduler's way with files sent by jobs (dispySendFile): each chunk from a node goes on at
 * once to the job's client, under a transfer id of the client's connection and with the node's
 * key, and the client's FileDone goes back to the node, so the job learns whether its client has
 * the file. Nothing is written or kept here: a chunk is held only while the client's socket takes
 * it, and while more than HIGH_WATER bytes wait for a client the node's connection is not read.
 * The client applies the rules (confinement, sizes, replacing) as it does for a JobCluster. A
 * client that is gone: the node is told at once (FileDone refusing the file), the chunks are
 * dropped, and that is logged once per client. A node that goes away mid-transfer: the client is
 * told (a last chunk it cannot accept), and removes its partial file.
 */
export class JobFileRelay {
  /** Transfers waiting for the client's FileDone, by their id on the client's connection. */
  private readonly byClientId = new Map<number, Relayed>();
  private nextId = 1;
  private readonly reported = new WeakSet<ClientLink>();

  /** @param clientOf the connection that holds a computation now (none while its client is away) */
  constructor(
    private readonly logger: Logger,
    private readonly clientOf: (computeId: string) => ClientLink | undefined,
  ) {}

  /** The sink of a node's link (`JobSchedulerOptions.relayJobFiles`). */
  forNode(link: NodeLink, jobOf: (uid: number) => SchedulerJob | undefined): ChunkSink {
    const transfers = new Map<number, Relayed | 'refused'>();
    let paused = false;
    return {
      receive: (chunk, attachment) => {
        const id = Number(chunk.transferId);
        let transfer = transfers.get(id);
        if (transfer === undefined) {
          if (Number(chunk.offset) !== 0) return; // the rest of a transfer given up
          transfer = this.begin(link, chunk, jobOf);
          if (!chunk.last) transfers.set(id, transfer);
        } else if (chunk.last) {
          transfers.delete(id);
        }
        if (transfer === 'refused' || transfer.dropped) return;
        const forwarded = { ...chunk, transferId: transfer.clientId, jobId: transfer.about.jobId, nodeKey: link.key } as dispy.FileChunk;
        if (!transfer.client.relayFile(forwarded, attachment)) {
          this.clientGone(transfer);
          return;
        }
        if (!paused && transfer.client.bufferedBytes > HIGH_WATER) {
          paused = true;
          const socket = link.connection.socket;
          socket?.pause();
          void transfer.client.drain().then(() => {
            paused = false;
            socket?.resume();
          });
        }
      },
      abort: () => {
        // The node's connection is gone: its transfers in progress end, and their clients remove the partial files.
        for (const transfer of transfers.values()) {
          if (transfer === 'refused') continue;
          this.byClientId.delete(transfer.clientId);
          if (transfer.dropped) continue;
          const { path, computeId, jobId } = transfer.about;
          transfer.client.relayFile({
            transferId: transfer.clientId,
            path,
            offset: Number.MAX_SAFE_INTEGER,
            last: true,
            computeId,
            jobId,
            nodeKey: link.key,
          });
        }
        transfers.clear();
        return Promise.resolve();
      },
      // The client counts the bytes of each job's files (it applies the limits).
      jobEnded: () => undefined,
    };
  }

  /** A client answered a transfer (FileDone): the node that sent it is told. */
  clientDone(client: ClientLink, done: dispy.FileDone): void {
    const transfer = this.byClientId.get(Number(done.transferId));
    if (!transfer || transfer.client !== client) return;
    this.byClientId.delete(transfer.clientId);
    transfer.dropped = true;
    transfer.connection.send({ fileDone: { transferId: transfer.nodeId, ok: done.ok, error: done.error } });
  }

  /** A client's connection ended: the nodes sending it files are told, and the rest of them dropped. */
  clientEnded(client: ClientLink): void {
    for (const transfer of [...this.byClientId.values()]) if (transfer.client === client) this.clientGone(transfer);
  }

  private begin(link: NodeLink, chunk: dispy.FileChunk, jobOf: (uid: number) => SchedulerJob | undefined): Relayed | 'refused' {
    const jobId = Number(chunk.jobId);
    const refuse = (why: string): 'refused' => {
      link.connection.send({ fileDone: { transferId: Number(chunk.transferId), ok: false, error: why } });
      return 'refused';
    };
    const job = jobOf(jobId) as SchedulerJob<ClientJobRef> | undefined;
    if (!job || job.nodeKey !== link.key || job.computeId !== chunk.computeId) {
      this.logger.warn(
        `node ${link.info.name} (${link.key}): file ${JSON.stringify(chunk.path)} of job ${jobId} refused: no such job runs there`,
      );
      return refuse(`no job ${jobId} of this client runs on ${link.key}; file refused`);
    }
    const client = this.clientOf(job.ref.computeId);
    if (!client?.isAuthenticated) {
      if (client) this.reportGone(client);
      return refuse('the client of its job is gone; file dropped');
    }
    const transfer: Relayed = {
      nodeId: Number(chunk.transferId),
      clientId: this.nextId++,
      client,
      connection: link.connection,
      about: { path: chunk.path, computeId: chunk.computeId, jobId: job.ref.jobId },
      dropped: false,
    };
    if (this.nextId > Number.MAX_SAFE_INTEGER) this.nextId = 1;
    this.byClientId.set(transfer.clientId, transfer);
    return transfer;
  }

  /** The client cannot take the file: the node is told, and the rest of its chunks are dropped. */
  private clientGone(transfer: Relayed): void {
    if (transfer.dropped) return;
    transfer.dropped = true;
    this.byClientId.delete(transfer.clientId);
    this.reportGone(transfer.client);
    transfer.connection.send({
      fileDone: { transferId: transfer.nodeId, ok: false, error: 'the client of its job is gone; file dropped' },
    });
  }

  private reportGone(client: ClientLink): void {
    if (this.reported.has(client)) return;
    this.reported.add(client);
    this.logger.warn(`client ${client.clientName || client.peer} (${client.peer}) is gone: files its jobs send are dropped`);
  }
}
