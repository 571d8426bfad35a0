import type { FramedSocket, dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { Computation } from '../execution/computation.js';

export interface SessionComputationsOptions {
  channel: FramedSocket;
  logger: Logger;
  /** CPUs the node offers now. */
  readonly nodeCpus: () => number;
  /** The client has no computation here any more: the node is free for others. */
  release(): void;
}

/**
 * The computations one client has on this node, those set up and those whose setup still waits
 * for files, and the client's requests about them: SetCpus and Close, answered under the
 * request's id.
 */
export class SessionComputations {
  private readonly ready = new Map<string, Computation>();
  private readonly preparing = new Map<string, Computation>();

  constructor(private readonly options: SessionComputationsOptions) {}

  /** A computation set up and running jobs. */
  get(computeId: string): Computation | undefined {
    return this.ready.get(computeId);
  }

  /** A computation set up or still being set up (files go to either). */
  find(computeId: string): Computation | undefined {
    return this.ready.get(computeId) ?? this.preparing.get(computeId);
  }

  has(computeId: string): boolean {
    return this.ready.has(computeId) || this.preparing.has(computeId);
  }

  /** Computations set up or being set up. */
  get size(): number {
    return this.ready.size + this.preparing.size;
  }

  get readyCount(): number {
    return this.ready.size;
  }

  /** A setup began: its computation receives files but runs no job yet. */
  preparingStarted(computation: Computation): void {
    this.preparing.set(computation.id, computation);
  }

  /**
   * A setup ended (`ready`: its computation now runs jobs). Returns false when the computation
   * was closed meanwhile.
   */
  preparingEnded(computation: Computation, ready: boolean): boolean {
    if (this.preparing.get(computation.id) !== computation) return false;
    this.preparing.delete(computation.id);
    if (ready) this.ready.set(computation.id, computation);
    return true;
  }

  /** Jobs running now, over every computation. */
  runningJobs(): number {
    let running = 0;
    for (const computation of this.ready.values()) running += computation.runningJobs().length;
    return running;
  }

  /** The node's CPUs changed: each computation uses at most that many (and at least one). */
  nodeCpusChanged(cpus: number): void {
    for (const computation of this.ready.values()) {
      computation.resize(Math.max(1, Math.min(cpus, computation.requestedCpus))).catch((error: Error) => {
        this.options.logger.warn(`computation ${computation.id} could not use ${cpus} CPUs: ${error.message}`);
      });
    }
  }

  /** SetCpus: another number of CPUs for a computation (at most what the node offers). */
  async setCpus(request: dispy.SetCpus, requestId: number): Promise<void> {
    const { channel, nodeCpus, logger } = this.options;
    const { computeId } = request;
    const computation = this.ready.get(computeId);
    if (!computation) {
      channel.send({ requestId, setCpusReply: { computeId, cpus: 0, error: `no computation ${computeId} here` } });
      return;
    }
    const cpus = Math.min(request.cpus, nodeCpus());
    try {
      await computation.resize(Math.max(cpus, 1));
    } catch (error) {
      logger.warn(`computation ${computeId} could not use ${cpus} CPUs: ${(error as Error).message}`);
      channel.send({ requestId, setCpusReply: { computeId, cpus: computation.cpus, error: (error as Error).message } });
      return;
    }
    channel.send({ requestId, setCpusReply: { computeId, cpus } });
  }

  /** Close: the client is done with a computation (one still being set up is abandoned). */
  async close(request: dispy.Close, requestId: number): Promise<void> {
    const { computeId } = request;
    const computation = this.find(computeId);
    this.ready.delete(computeId);
    this.preparing.delete(computeId);
    await computation?.close().catch((error: Error) => this.options.logger.warn(`closing computation ${computeId}: ${error.message}`));
    this.options.channel.send({ requestId, closeReply: { computeId } });
    if (this.size === 0) this.options.release();
  }

  /** The client is gone: closes every computation (killing its jobs) and waits until all are. */
  async closeAll(): Promise<void> {
    const closing = [...this.ready.values(), ...this.preparing.values()].map((computation) => computation.close());
    this.ready.clear();
    this.preparing.clear();
    for (const result of await Promise.allSettled(closing)) {
      if (result.status === 'rejected') this.options.logger.warn(`closing a computation: ${(result.reason as Error).message}`);
    }
  }
}
