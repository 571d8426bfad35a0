import path from 'node:path';
import { RecoverFileWriter, type RecoverFileTls, type RecoverNode } from '@dispy/recover';
import type { Logger } from '@dispy/protocol/internal';
import type { ComputationEvents, JobEndStatus, JobOutcome, NodeInfo, SchedulerJob } from '@dispy/scheduler';
import type { DispyJob } from '../job/dispy-job.js';
import type { ResolvedClusterOptions } from './options.js';

type Job = SchedulerJob<DispyJob>;

/**
 * Writes a cluster's recover file as its computation's events pass on to the ledger: the nodes
 * that serve it, each job sent to a node, sent back to the queue, or ended. What `recoverJobs`
 * needs after the client dies, and nothing more (never the secret).
 */
export class RecoverRecorder implements ComputationEvents<DispyJob> {
  private constructor(
    private readonly events: ComputationEvents<DispyJob>,
    private readonly writer: RecoverFileWriter,
    private readonly logger: Logger,
    private readonly via?: RecoverNode,
  ) {}

  /**
   * Creates the cluster's recover file (`options.recoverFile`: a path, `false` for none,
   * undefined for `_dispy_YYYYMMDDHHMMSS` in the working directory) and the events that write to
   * it before passing on to `events`; undefined with `false`, or when the default file cannot be
   * created (logged). With `via` (SharedJobCluster: dispyscheduler), the file names it as where
   * every job is, not the nodes: recovery asks the scheduler, which keeps the replies.
   * @throws DispyError `DISPY_ERR_RECOVER_FILE` when the file named exists or cannot be created
   */
  static open(
    options: ResolvedClusterOptions,
    computation: { computeId: string; name: string },
    events: ComputationEvents<DispyJob>,
    logger: Logger,
    via?: RecoverNode,
  ): RecoverRecorder | undefined {
    if (options.recoverFile === false) return undefined;
    let writer: RecoverFileWriter;
    try {
      writer = RecoverFileWriter.create(
        options.recoverFile,
        { ...computation, tls: tlsFiles(options) },
        {
          onError: (error) => logger.error(`${error.message}; this cluster's jobs can no longer be recovered if it dies`),
          removeOnExit: true,
        },
      );
    } catch (error) {
      // A path the program chose must work; the default one (in a working directory that may be
      // read-only) only costs the recovery.
      if (options.recoverFile !== undefined) throw error;
      logger.warn(
        `${(error as Error).message}; this cluster's jobs cannot be recovered if it dies (option recoverFile: a path, or false for none)`,
      );
      return undefined;
    }
    logger.debug(`recover file ${writer.path}`);
    return new RecoverRecorder(events, writer, logger, via);
  }

  /** The file's path. */
  get path(): string {
    return this.writer.path;
  }

  /** Closes the file; deletes it when no job is left on a node without its outcome (every result was delivered). */
  close(): void {
    const pending = this.writer.pending;
    this.writer.close({ remove: pending === 0 });
    if (pending > 0) this.logger.info(`recover file ${this.writer.path} kept: ${pending} jobs sent to nodes did not come back`);
  }

  nodeUp(node: NodeInfo): void {
    this.writer.node(this.via ?? node);
    this.events.nodeUp(node);
  }

  nodeDown(node: NodeInfo, lost: Job[], why: string): void {
    for (const job of lost) this.writer.jobEnded(job.uid, 'cancelled');
    this.events.nodeDown(node, lost, why);
  }

  nodeFailed(node: NodeInfo, error: string): void {
    this.events.nodeFailed(node, error);
  }

  nodeAvailInfo(node: NodeInfo): void {
    this.events.nodeAvailInfo(node);
  }

  jobStarted(job: Job, node: NodeInfo): void {
    this.writer.jobRunning(job.uid, this.via ?? node, job.ref.id);
    this.events.jobStarted(job, node);
  }

  jobsRunning(started: ReadonlyArray<{ job: Job; startTime: number }>, node: NodeInfo): void {
    this.events.jobsRunning(started, node);
  }

  jobProvisional(job: Job, result: Uint8Array, node: NodeInfo): void {
    this.events.jobProvisional(job, result, node);
  }

  jobDone(job: Job, outcome: JobOutcome, node: NodeInfo): void {
    this.writer.jobEnded(job.uid, outcome.status);
    this.events.jobDone(job, outcome, node);
  }

  jobFailed(job: Job, status: Exclude<JobEndStatus, 'finished'>, why: string, node?: NodeInfo): void {
    this.writer.jobEnded(job.uid, status);
    this.events.jobFailed(job, status, why, node);
  }

  jobRequeued(job: Job, from: NodeInfo): void {
    // Through dispyscheduler, a job sent back to the queue stays with the scheduler.
    if (!this.via) this.writer.jobQueued(job.uid);
    this.events.jobRequeued(job, from);
  }
}

/** The cluster's TLS files (absolute paths, so recovery finds them from any directory) and fingerprints. */
function tlsFiles(options: ResolvedClusterOptions): RecoverFileTls | undefined {
  const { cafile, certfile, keyfile, certFingerprint } = options;
  if (cafile === undefined && certfile === undefined && keyfile === undefined && certFingerprint === undefined) return undefined;
  const tls: RecoverFileTls = {};
  if (cafile !== undefined) tls.cafile = path.resolve(cafile);
  if (certfile !== undefined) tls.certfile = path.resolve(certfile);
  if (keyfile !== undefined) tls.keyfile = path.resolve(keyfile);
  if (certFingerprint !== undefined) tls.certFingerprint = certFingerprint;
  return tls;
}
