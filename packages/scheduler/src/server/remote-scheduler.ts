import type net from 'node:net';
import { DispyError, ErrorCode, type ClientTls, type Frame, type dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import { NodeLink } from '../cluster/node-link.js';
import { reattachComputations } from '../cluster/link-recovery.js';
import { Reconnection } from '../cluster/reconnection.js';
import type { ClusterScheduler } from '../cluster/cluster-scheduler.js';
import type { ComputationEvents, ComputationSpec, JobRequest, LocalFile, NodeAllocator, NodeInfo, SchedulerJob } from '../cluster/types.js';
import { jobFilesConfig, type JobFilesOptions } from '../cluster/job-files.js';
import type { JobFilesConfig } from '../cluster/node-link.js';
import { connectToScheduler } from './remote-connect.js';
import { RemoteEvents } from './remote-events.js';
import { RemoteJobSender, type RemoteJob } from './remote-job-sender.js';
import { RemoteNodeOps } from './remote-node-ops.js';

export interface RemoteSchedulerOptions {
  /** Where dispyscheduler serves SharedJobClusters. */
  host: string;
  port: number;
  /** The cluster secret. */
  secret: string;
  tls?: ClientTls;
  localAddress?: string;
  clientName: string;
  logger: Logger;
  /** @internal Makes the socket (tests); default `net.connect`. */
  connect?: () => net.Socket;
  /** Where files sent by jobs (dispySendFile, relayed by dispyscheduler) land, and their limits; default: the working directory. */
  jobFiles?: Omit<JobFilesOptions, 'logger'>;
}

/** How long closing waits for a lost connection to come back before it leaves the computation to the scheduler. */
const CLOSE_WAIT_MS = 5000;

/**
 * The scheduler of a SharedJobCluster: the methods of `JobScheduler` that `JobCluster` uses, done
 * by dispyscheduler over one authenticated connection (the client's side is a node's link:
 * `NodeLink`, `NodeConnection`). Its frames come back as the same `ComputationEvents`, so the
 * cluster's ledger, jobs and callbacks are JobCluster's own. One computation per instance.
 *
 * When the connection is lost, it reconnects with backoff for as long as dispyscheduler keeps
 * the computation (its grace period, told in AuthResult) and takes the computation back
 * (Reattach, as from a node: `reattachComputations`): the scheduler resends the replies not
 * acknowledged, and jobs it never got are sent again. If it does not come back in time, or lost
 * the computation (it restarted), the jobs not done end Cancelled, and the next submit connects
 * again and sets the computation up anew; a scheduler that cannot be reached fails those jobs,
 * naming it.
 *
 * Its parts: `connectToScheduler` (connect and set up), `RemoteJobSender` (jobs and their files),
 * `RemoteEvents` (the scheduler's frames as events), `RemoteNodeOps` (node operations); the
 * reconnection and Reattach stay here, with the link they replace.
 */
export class RemoteScheduler<
  Ref = unknown,
  Owner = unknown,
  Alloc extends NodeAllocator<Owner> = NodeAllocator<Owner>,
> implements ClusterScheduler<Ref, Owner, Alloc> {
  private spec?: ComputationSpec<Ref, Owner, Alloc>;
  private link?: NodeLink;
  /** The connection being opened and set up. */
  private opening?: NodeLink;
  private connecting?: Promise<void>;
  private readonly jobs = new Map<number, RemoteJob<Ref>>();
  /** Nodes serving the computation now, by key. */
  private readonly nodes = new Map<string, NodeInfo>();
  /** dispyscheduler's frames, as the computation's events. */
  private readonly frames: RemoteEvents<Ref>;
  private readonly sender: RemoteJobSender<Ref>;
  private readonly nodeOps: RemoteNodeOps<Ref, Owner, Alloc>;
  private nextUid = 1;
  private readonly jobFiles: JobFilesConfig;
  private active = false;
  /** Reconnecting the lost link (its state is `down` meanwhile). */
  private reconnection?: Reconnection;
  private closed = false;

  constructor(private readonly options: RemoteSchedulerOptions) {
    const where = `${options.host}:${options.port}`;
    const link = (): NodeLink | undefined => this.link;
    const events = (): ComputationEvents<Ref> => this.spec!.events;
    const { logger } = options;
    this.frames = new RemoteEvents({ jobs: this.jobs, nodes: this.nodes, link, events, logger, where });
    this.sender = new RemoteJobSender({ jobs: this.jobs, link, events });
    this.nodeOps = new RemoteNodeOps({ nodes: this.nodes, link, linkNow: () => this.linkNow(), spec: () => this.spec!, logger, where });
    this.jobFiles = jobFilesConfig({ fileDir: process.cwd(), ...options.jobFiles, logger: options.logger }, (_link, chunk) => {
      const job = this.jobs.get(Number(chunk.jobId));
      return job !== undefined && job.computeId === chunk.computeId && job.nodeKey === chunk.nodeKey;
    });
  }

  private get where(): string {
    return `${this.options.host}:${this.options.port}`;
  }

  /** Connects to dispyscheduler and sets the computation up there; rejects with why not (AuthError for a wrong secret). */
  async addComputation(spec: ComputationSpec<Ref, Owner, Alloc>): Promise<void> {
    if (this.spec) throw new DispyError(ErrorCode.START, 'a SharedJobCluster has one computation');
    this.spec = spec;
    await this.ready();
  }

  submit(request: JobRequest<Ref>): SchedulerJob<Ref> {
    const job: RemoteJob<Ref> = {
      uid: this.nextUid++,
      computeId: request.computeId,
      priority: request.priority,
      ref: request.ref,
      request,
    };
    this.jobs.set(job.uid, job);
    if (this.link?.state === 'down') return job; // sent once the computation is taken back
    if (this.link && !this.connecting) this.sender.send(job);
    else if (this.spec && !this.closed) this.ready().catch(() => undefined);
    return job;
  }

  cancel(job: SchedulerJob<Ref>): 'dequeued' | 'sent' | 'unknown' {
    const ours = this.jobs.get(job.uid);
    if (!ours) return 'unknown';
    if (ours.request || ours.sending) {
      this.jobs.delete(job.uid);
      return 'dequeued';
    }
    ours.cancelled = true;
    if (this.link?.state === 'up') this.link.connection.send({ cancel: { computeId: ours.computeId, jobId: ours.uid } });
    return 'sent';
  }

  drop(job: SchedulerJob<Ref>): boolean {
    const ours = this.jobs.get(job.uid);
    if (!ours) return false;
    this.jobs.delete(job.uid);
    if (!ours.request) this.link?.connection.send({ cancel: { computeId: ours.computeId, jobId: ours.uid } });
    return true;
  }

  nodesOf(_computeId: string): NodeInfo[] {
    return [...this.nodes.values()];
  }

  runningOn(nodeKey: string): SchedulerJob<Ref>[] {
    return [...this.jobs.values()].filter((job) => job.nodeKey === nodeKey);
  }

  // ---- Node operations, done by dispyscheduler on this computation (as JobScheduler does them on its own) ----

  /** Adds a way of choosing nodes (allocateNode): the scheduler asks its nodes again. */
  allocate(computeId: string, allocator: Alloc): Promise<void> {
    return this.nodeOps.allocate(computeId, allocator);
  }

  /** Stops sending the computation's jobs to a node; its running jobs finish. False when the node does not serve it. */
  deallocate(computeId: string, nodeKey: string): Promise<boolean> {
    return this.nodeOps.deallocate(computeId, nodeKey);
  }

  /** Closes the computation on one node (its running jobs terminated, or finishing first). False when the node does not serve it. */
  closeNode(computeId: string, nodeKey: string, terminatePending: boolean): Promise<boolean> {
    return this.nodeOps.closeNode(computeId, nodeKey, terminatePending);
  }

  /**
   * Asks the scheduler to use `cpus` CPUs of a node for the computation. It does so with
   * --cooperative (or for an exclusive computation), as in dispy; otherwise it changes nothing and
   * answers the CPUs used there. Resolves those CPUs, or -1 when the node does not serve the
   * computation, refuses, or does not answer (logged).
   */
  setNodeCpus(computeId: string, nodeKey: string, cpus: number): Promise<number> {
    return this.nodeOps.setNodeCpus(computeId, nodeKey, cpus);
  }

  /** Copies a file to a node (through the scheduler) into the computation's directory; false when the node does not serve it. */
  sendFile(computeId: string, nodeKey: string, file: LocalFile): Promise<boolean> {
    return this.nodeOps.sendFile(computeId, nodeKey, file);
  }

  /** The connection, once the computation is set up (connecting if it is not). */
  private async linkNow(): Promise<NodeLink> {
    if (!this.link || this.connecting) await this.ready();
    if (!this.link) throw new DispyError(ErrorCode.NO_ANSWER, `not connected to dispyscheduler ${this.where}`);
    return this.link;
  }

  setActive(active: boolean): void {
    this.active = active;
    this.link?.connection.setActive(active);
    this.reconnection?.setActive(active);
  }

  async closeComputation(computeId: string): Promise<void> {
    await this.connecting?.catch(() => undefined);
    // A lost link being reconnected: the computation is closed once it is back (or known gone).
    // A scheduler still away after CLOSE_WAIT_MS is left to close it itself, at the end of its
    // grace period for this client: close() does not wait that long.
    const reconnection = this.reconnection;
    if (reconnection) {
      reconnection.setActive(true);
      let timer: NodeJS.Timeout | undefined;
      const waited = await Promise.race([
        reconnection.ended,
        new Promise<'away'>((resolve) => (timer = setTimeout(() => resolve('away'), CLOSE_WAIT_MS))),
      ]);
      clearTimeout(timer);
      if (waited === 'away') {
        reconnection.stop();
        this.options.logger.warn(
          `dispyscheduler ${this.where} is still unreachable; it closes the computation itself when its grace period for this client ends`,
        );
        return;
      }
    }
    const link = this.link;
    if (!link || link.state !== 'up') return;
    link.connection.setActive(true);
    await link.connection.closeComputation(computeId, true).catch((error: Error) => this.options.logger.debug(error.message));
  }

  /** Closes the computation at the scheduler (its running jobs are terminated) and hangs up. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.spec) await this.closeComputation(this.spec.computeId);
    this.reconnection?.stop();
    this.link?.close();
    this.link = undefined;
  }

  /** Connects and sets the computation up unless that is done or in progress; then sends the jobs held meanwhile. */
  private ready(): Promise<void> {
    this.connecting ??= connectToScheduler({
      options: this.options,
      spec: this.spec!,
      nodeOps: this.nodeOps,
      onFrame: (link, frame, attachment) => this.onFrame(link, frame, attachment),
      onClose: (link, error) => this.lost(link, error),
      opening: (link) => (this.opening = link),
      isClosed: () => this.closed,
    })
      .then((link) => {
        this.link = link;
        link.connection.setActive(this.active);
        for (const job of this.jobs.values()) if (job.request) this.sender.send(job);
      })
      .catch((error: Error) => {
        const why = `could not use dispyscheduler: ${error.message}`;
        // Jobs waiting for the connection end with the reason; the next submit tries again.
        for (const job of [...this.jobs.values()]) {
          if (!job.request) continue;
          this.jobs.delete(job.uid);
          this.spec?.events.jobFailed(job, 'cancelled', why);
        }
        throw DispyError.isInstance(error) ? new DispyError(error.code, why, { cause: error }) : new Error(why, { cause: error });
      })
      .finally(() => {
        this.connecting = undefined;
      });
    return this.connecting;
  }

  private onFrame(link: NodeLink, frame: Frame, attachment?: Buffer[]): void {
    // Frames of the connection being set up count too: one may follow its SetupReply in the same read.
    if (link !== this.link && link !== this.opening) return;
    // A file a job sent, relayed by the scheduler: it lands as from a node (confined, limited, then renamed).
    if (frame.kind === 'fileChunk') return link.files(this.jobFiles).receive(frame.fileChunk as dispy.FileChunk, attachment);
    this.frames.receive(frame, attachment);
  }

  /**
   * The connection to the scheduler is gone: reconnects and takes the computation back while the
   * scheduler keeps it (its grace period); a scheduler that keeps nothing closed the computation,
   * so its jobs are over.
   */
  private lost(link: NodeLink, error?: Error): void {
    if (link !== this.link || this.closed || link.state === 'down') return;
    const graceSeconds = link.zombieSeconds;
    if (graceSeconds <= 0 || link.stopping) {
      this.gone(link, `lost the connection to dispyscheduler ${this.where}${error ? `: ${error.message}` : ''}; it closed the computation`);
      return;
    }
    const lostAt = Date.now();
    link.state = 'down';
    const { logger } = this.options;
    logger.warn(
      `lost the connection to dispyscheduler ${this.where}${error ? `: ${error.message}` : ''}; ` +
        `its jobs keep running there; reconnecting for up to ${graceSeconds} s`,
    );
    const reconnection: Reconnection = new Reconnection({
      deadline: lostAt + graceSeconds * 1000,
      attempt: async () => {
        await link.reconnect();
        link.connection.setActive(this.active);
        try {
          await this.takeBack(link);
        } catch (failure) {
          link.connection.destroy();
          throw failure;
        }
        if (this.link !== link) return; // the scheduler had lost the computation: handled
        link.state = 'up';
        logger.info(`dispyscheduler ${this.where} is back after ${((Date.now() - lostAt) / 1000).toFixed(1)} s; the jobs go on`);
        for (const job of this.jobs.values()) if (job.request) this.sender.send(job);
      },
      failed: (failure, attempt) => logger.debug(`dispyscheduler ${this.where}: reconnect attempt ${attempt} failed: ${failure.message}`),
      abandon: () => link.close(),
      gaveUp: (lastError) => {
        const last = lastError ? ` (last attempt: ${lastError.message})` : '';
        this.gone(
          link,
          `lost the connection to dispyscheduler ${this.where}; not back within its grace period of ${graceSeconds} s${last}`,
        );
      },
    });
    reconnection.setActive(this.active);
    this.reconnection = reconnection;
    void reconnection.ended.then(() => {
      if (this.reconnection === reconnection) this.reconnection = undefined;
    });
  }

  /** On the new connection: Reattach, then the jobs the scheduler never got are sent again. */
  private async takeBack(link: NodeLink): Promise<void> {
    await reattachComputations<RemoteJob<Ref>>(link, {
      logger: this.options.logger,
      sentTo: () => [...this.jobs.values()].filter((job) => job.sent !== undefined),
      resend: (job) => this.sender.sendFrame(job, job.sent!),
      cancelledBeforeSent: (job) => {
        this.jobs.delete(job.uid);
        this.spec!.events.jobFailed(job, 'cancelled', 'cancelled before it ran');
      },
      lostComputation: (_link, _computeId, _jobs, why) => {
        this.gone(link, `dispyscheduler ${this.where} ${why.replace(/^node \S+ \([^)]*\) /, '')}`);
        return Promise.resolve();
      },
    });
    if (this.link === link && link.connection.isClosed)
      throw new DispyError(ErrorCode.NO_ANSWER, `dispyscheduler ${this.where} closed the new connection`);
  }

  /** The computation is gone at the scheduler (or the link given up): its jobs sent are over; the next submit sets it up again. */
  private gone(link: NodeLink, why: string): void {
    if (link !== this.link) return;
    this.link = undefined;
    // A reconnection in progress ends here (its attempt took the computation back, and found it gone).
    this.reconnection?.stop();
    this.reconnection = undefined;
    link.close();
    this.options.logger.warn(`${why}; the next job submitted sets the computation up again`);
    const events = this.spec!.events;
    const nodes = [...this.nodes.values()];
    this.nodes.clear();
    const sent = [...this.jobs.values()].filter((job) => !job.request);
    for (const job of sent) this.jobs.delete(job.uid);
    for (const node of nodes) {
      events.nodeDown(
        node,
        sent.filter((job) => job.nodeKey === node.key),
        why,
      );
    }
    for (const job of sent) if (!nodes.some((node) => node.key === job.nodeKey)) events.jobFailed(job, 'cancelled', why);
    // Jobs submitted while it was being lost wait for the next connection.
    if (!this.closed && [...this.jobs.values()].some((job) => job.request)) this.ready().catch(() => undefined);
  }
}
