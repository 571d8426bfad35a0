import type { FramedSocket, dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import { Computation, type ComputationOptions } from '../execution/computation.js';
import type { SessionComputations } from './computations.js';
import type { KeptComputation } from './kept-computation.js';
import type { NodeComputations } from './node-computations.js';
import type { CpuSlots } from '../execution/cpu-slots.js';

/** Characters of a setup error sent back at most (4 bytes each at worst, well under 64 KiB). */
const MAX_ERROR_CHARS = 8_000;

/** What a computation reports to the rest of its session: job ends, provisional results, files to send. */
export type ComputationEvents = Pick<ComputationOptions, 'onDone' | 'onStarted' | 'onProvisional' | 'onSendFile' | 'onShutdownRequest'>;

export interface ComputationSetupOptions {
  channel: FramedSocket;
  computations: SessionComputations;
  logger: Logger;
  peer: string;
  nodeName: string;
  destPathPrefix: string;
  /** Largest file accepted, in bytes (0: no limit). */
  maxFileSize: number;
  /** Cap on each of a job's stdout, stderr and exception text, in bytes (0: none; default 1 MiB). */
  maxOutputBytes?: number;
  /** CPUs the node offers now (0: it takes no new jobs). */
  nodeCpus(): number;
  /** The node's registry of computations (a computation admitted is reserved there until set up). */
  registry: NodeComputations;
  /** The node's CPUs, shared by every computation's jobs. */
  slots: CpuSlots;
  /** Whether the node takes the computation now: undefined, or why not (the client is told to retry). */
  admit(computeId: string, exclusive: boolean): string | undefined;
  /** The client has no computation here any more. */
  release(): void;
  /** True once the session has ended. */
  isClosed(): boolean;
  /** A computation is set up and running, its SetupReply sent (liveness starts with the first). */
  onReady(setup: dispy.Setup): void;
  /** How often the client should send a heartbeat, in seconds (told in SetupReply). */
  heartbeatSeconds: number;
}

/**
 * Sets up a computation for the client: is admitted by the node (which may say "not now"), makes the computation's directory,
 * asks for the files it lacks (FileWant) and waits for them, starts its workers, and answers
 * SetupReply. Both answers carry the Setup's request id.
 */
export class ComputationSetup {
  constructor(private readonly options: ComputationSetupOptions) {}

  /** Answers one Setup; never rejects (a failure is the client's SetupReply). */
  async setUp(setup: dispy.Setup, requestId: number): Promise<void> {
    const { channel, computations, logger, peer } = this.options;
    const { computeId } = setup;
    // A setup's error (a user's message and stack) is cut to fit the 64 KiB a SetupReply may have.
    const refuse = (error: string, retry = false) =>
      channel.send({
        requestId,
        setupReply: { computeId, ok: false, retry, error: error.length > MAX_ERROR_CHARS ? `${error.slice(0, MAX_ERROR_CHARS)}…` : error },
      });
    // A computation of this id left by a lost client may be closing: its directory and saved
    // replies go before the new one is made, not under it.
    await computations.closedBefore(computeId);
    if (this.options.isClosed()) return;
    const kept = computations.entryForSetup(computeId);
    if (!kept) {
      refuse(`computation ${computeId} is already set up`);
      return;
    }
    if (this.options.registry.isReserved(computeId)) {
      // Its client set it up on a connection it has since lost (the setup goes on there until
      // that connection ends): two setups of one id would share, and remove, one directory.
      refuse(`not now: computation ${computeId} is still being set up on an earlier connection; the client tries again later`, true);
      if (computations.size === 0) this.options.release();
      return;
    }
    const nodeCpus = this.options.nodeCpus();
    if (nodeCpus === 0) {
      refuse('the node takes no new jobs now');
      if (computations.size === 0) this.options.release();
      return;
    }
    const notNow = this.options.admit(computeId, setup.exclusive);
    if (notNow !== undefined) {
      logger.info(`setup of ${setup.name} for ${peer}: not now, ${notNow}`);
      refuse(`not now: ${notNow}; the client tries again later`, true);
      if (computations.size === 0) this.options.release();
      return;
    }
    kept.exclusive = setup.exclusive;
    kept.name = setup.name;
    const cpus = setup.cpus > 0 ? Math.min(setup.cpus, nodeCpus) : nodeCpus;
    let computation: Computation | undefined;
    try {
      computation = await this.prepare(setup, cpus, kept);
      // The client may have gone while the directory was made: closeAll did not see this one.
      if (this.options.isClosed()) throw new Error('the client went away');
      computations.preparingStarted(computation);
      await this.receiveFiles(computation, setup, requestId);
      await computation.start();
      if (this.options.isClosed() || !computations.preparingEnded(computation, kept)) {
        // The client went away, or closed the computation, while it was being set up.
        await this.closeTracked(computation);
        if (!this.options.isClosed()) refuse(`computation ${computeId} was closed while it was being set up`);
        this.options.release();
        return;
      }
      logger.info(
        `computation ${setup.name} (${computeId}) set up for ${peer} with ${cpus} CPUs${setup.exclusive ? ', alone (exclusive)' : ''}`,
      );
      channel.send({
        requestId,
        setupReply: { computeId, ok: true, cpus, destPath: computation.dir, heartbeatInterval: this.options.heartbeatSeconds },
      });
      this.options.onReady(setup);
    } catch (error) {
      if (computation) {
        computations.preparingEnded(computation);
        await this.closeTracked(computation).catch(() => undefined);
      }
      if (this.options.isClosed()) return;
      logger.warn(`setup of ${setup.name} for ${peer} failed: ${(error as Error).message}`);
      refuse((error as Error).message);
      if (computations.size === 0) this.options.release();
    } finally {
      this.options.registry.unreserve(computeId);
    }
  }

  /** Closes a computation whose setup did not complete; a new setup of its id waits for that. */
  private closeTracked(computation: Computation): Promise<void> {
    const closing = computation.close();
    this.options.registry.noteClosing(computation.id, closing);
    return closing;
  }

  private prepare(setup: dispy.Setup, cpus: number, kept: KeptComputation): Promise<Computation> {
    const { channel, logger, nodeName, destPathPrefix } = this.options;
    return Computation.prepare({
      setup,
      cpus,
      destPathPrefix,
      nodeName,
      nodeAddress: channel.socket.localAddress ?? '',
      logger,
      maxOutputBytes: this.options.maxOutputBytes,
      slots: this.options.slots,
      // Its jobs report to the entry that outlives this connection, whichever client is attached.
      ...kept.events,
    });
  }

  /** Asks for the files the node lacks and waits until each has arrived or is known to be the same. */
  private async receiveFiles(computation: Computation, setup: dispy.Setup, requestId: number): Promise<void> {
    const files = setup.files ?? [];
    const limit = this.options.maxFileSize;
    const tooLarge = files.find((file) => limit > 0 && Number(file.size) > limit);
    if (tooLarge) {
      throw new Error(`file ${tooLarge.name} of ${tooLarge.size} bytes exceeds this node's limit of ${limit} bytes (--max-file-size)`);
    }
    const { send, have } = await computation.wantedFiles(files);
    if (send.length === 0 && have.length === 0) return;
    this.options.channel.send({ requestId, fileWant: { computeId: computation.id, names: send, have } });
    // The client answers each `have` with the file (it differs) or FileKept (it is the same).
    await computation.awaitFiles([...send, ...have.map((file) => file.name ?? '')]);
  }
}
