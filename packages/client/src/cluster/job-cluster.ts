import { randomBytes } from 'node:crypto';
import path from 'node:path';
import os from 'node:os';
import {
  MAX_VALUE_BYTES,
  DispyError,
  ErrorCode,
  UnsendableValueError,
  OptionError,
  dispy,
  encodeArguments,
  encodeValue,
  loadClientTls,
  shortSecretWarning,
} from '@dispy/protocol';
import { MONITOR_SOURCE, createLogger, type Logger, type MonitorSource } from '@dispy/protocol/internal';
import { JobScheduler, describeFiles, type ClusterScheduler, type JobPin } from '@dispy/scheduler';
import { DispyJob } from '../job/dispy-job.js';
import { DispyNode } from '../node/dispy-node.js';
import { NodeAllocate } from '../node/node-allocate.js';
import { resolveClusterOptions, type JobClusterOptions, type ResolvedClusterOptions } from './options.js';
import { clusterStats, formatStats, type ClusterStats } from './stats.js';
import { findNodeKey } from './node-control.js';
import { collectDepends } from './depends.js';
import { programArguments, shipComputation } from './ship-computation.js';
import { JobLedger } from './job-ledger.js';
import { ClusterMonitor } from './cluster-monitor.js';
import { RecoverRecorder } from './recover-recorder.js';
import type { RecoverNode } from '@dispy/recover';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFunction = (...args: any[]) => any;

/** What `submitJob` takes. */
export interface SubmitJobOptions<A extends unknown[]> {
  args: A;
  /** Only this node may run the job (a DispyNode, an IP address or a host name). */
  node?: DispyNode | string;
  /** Higher runs first; FIFO within a priority. Default 0. */
  priority?: number;
  depends?: unknown[];
  timeout?: number;
}

/** What the cluster's scheduler is given to start (see `ClusterSeam`). */
export interface SchedulerContext {
  options: ResolvedClusterOptions;
  /** The options as the user gave them (to tell a default from a choice). */
  given: JobClusterOptions<never>;
  tls: ReturnType<typeof loadClientTls>;
  logger: Logger;
}

/**
 * @internal How a kind of cluster differs from JobCluster: its name in messages and its scheduler
 * (SharedJobCluster: dispyscheduler's, through `RemoteScheduler`). Everything else is shared.
 */
export interface ClusterSeam {
  kind: string;
  scheduler(context: SchedulerContext): ClusterScheduler<DispyJob, unknown, NodeAllocate>;
  /** Where the recover file says the jobs are, instead of their nodes (dispyscheduler, which keeps their replies). */
  recoverVia?: RecoverNode;
}

/**
 * A cluster for one computation, scheduled from this process: it finds nodes, ships the
 * computation to them once, and runs every submitted job on the least loaded node with a free
 * CPU. Create it, `submit` jobs, `await job.wait()`, then `await cluster.close()`.
 *
 * @throws OptionError for a wrong option (naming it), ComputationError when the computation
 *   cannot be shipped (naming the cause), both before anything is sent.
 */
export class JobCluster<F extends AnyFunction = AnyFunction> {
  /** The computation's name. */
  readonly name: string;
  readonly options: ResolvedClusterOptions;
  private readonly isProgram: boolean;
  private readonly logger: Logger;
  private readonly computeId = randomBytes(8).toString('hex');
  private readonly scheduler: ClusterScheduler<DispyJob, unknown, NodeAllocate>;
  /** `JobCluster` or `SharedJobCluster`, as messages name the cluster. */
  private readonly kind: string;
  private readonly ledger: JobLedger;
  /** Writes the recover file (option `recoverFile`), between the scheduler's events and the ledger. */
  private readonly recorder?: RecoverRecorder;
  private readonly started: Promise<void>;
  private readonly createdAt = Date.now();
  private closing?: Promise<void>;
  private startError?: Error;

  constructor(computation: F | string, options: JobClusterOptions<Awaited<ReturnType<F>>> = {}, seam?: ClusterSeam) {
    this.kind = seam?.kind ?? 'JobCluster';
    this.options = resolveClusterOptions(options);
    const tls = loadClientTls(this.options, this.kind);
    const shipped = shipComputation(computation, this.options);
    this.name = shipped.name;
    this.isProgram = shipped.kind === dispy.ComputationKind.PROGRAM;
    this.logger = createLogger(`dispy ${this.name}`, this.options.loglevel);
    const weak = shortSecretWarning(this.options.secret);
    if (weak !== undefined) this.logger.warn(weak);
    if (this.options.extIpAddr !== undefined) this.logger.warn(EXT_IP_ADDR_WARNING);
    const context: SchedulerContext = { options: this.options, given: options as JobClusterOptions<never>, tls, logger: this.logger };
    this.scheduler = seam ? seam.scheduler(context) : localScheduler(context);
    this.ledger = new JobLedger({
      name: this.name,
      logger: this.logger,
      callback: this.options.callback,
      clusterStatus: this.options.clusterStatus,
      setActive: () => this.refreshActive(),
    });
    this.recorder = RecoverRecorder.open(
      this.options,
      { computeId: this.computeId, name: this.name },
      this.ledger,
      this.logger,
      seam?.recoverVia,
    );
    const { files, ...spec } = shipped;
    this.started = describeFiles(files)
      .then((described) =>
        this.scheduler.addComputation({
          ...spec,
          computeId: this.computeId,
          files: described,
          nodeExtras: async (chosen) => ({
            files: await describeFiles(collectDepends(chosen.depends, `NodeAllocate(${chosen.host}).depends`).files),
            setupArgs: chosen.setupArgs.length > 0 ? encodeValue(chosen.setupArgs, `NodeAllocate(${chosen.host}).setupArgs`) : undefined,
          }),
          destPath: this.options.destPath ?? '',
          cleanup: this.options.cleanup !== false,
          allocators: this.options.nodes.map((node) => (typeof node === 'string' ? new NodeAllocate(node) : node)),
          reentrant: this.options.reentrant,
          exclusive: this.options.exclusive,
          maxRetries: this.options.maxRetries,
          pulseInterval: this.options.pulseInterval ?? 0,
          owner: this,
          events: this.recorder ?? this.ledger,
        }),
      )
      .catch((error: Error) => this.failStart(error));
  }

  /** Schedules `computation(...args)` on any node; returns the job at once. */
  submit(...args: Parameters<F>): DispyJob<Awaited<ReturnType<F>>> {
    return this.submitJob({ args });
  }

  /** Schedules `computation(...args)` on that node only (a DispyNode, IP address or host name). */
  submitNode(node: DispyNode | string, ...args: Parameters<F>): DispyJob<Awaited<ReturnType<F>>> {
    return this.submitJob({ args, node });
  }

  /**
   * Schedules a job with per-job options.
   * @throws UnsendableValueError naming the argument that cannot be sent; DispyError after close.
   */
  submitJob(options: SubmitJobOptions<Parameters<F>>): DispyJob<Awaited<ReturnType<F>>> {
    if (this.closing) throw new DispyError(ErrorCode.CLOSED, `${this.kind} ${this.name} is closed; create a new one to submit jobs`);
    if (this.startError) throw this.startError;
    if (!Array.isArray(options.args)) throw new OptionError(`submitJob: args must be an array, got ${typeof options.args}`);
    const jobArgs = this.isProgram ? programArguments(options.args) : options.args;
    const perJob = options.depends ? collectDepends(options.depends, 'submitJob depends') : undefined;
    if (perJob && Object.keys(perJob.values).length > 0) {
      throw new OptionError('submitJob depends: per-job depends take functions, classes and files; put values in the arguments');
    }
    const priority = options.priority ?? 0;
    if (!Number.isFinite(priority)) throw new OptionError(`submitJob: priority must be a finite number, got ${String(priority)}`);
    const timeout = options.timeout ?? this.options.jobTimeout;
    if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0)) {
      throw new OptionError(`submitJob: timeout must be a positive number of seconds, got ${String(timeout)}`);
    }
    const pin = options.node === undefined ? undefined : jobPin(options.node);
    const args = encodeArguments(jobArgs);
    if (args.length > MAX_VALUE_BYTES) {
      throw new UnsendableValueError(
        'the argument list',
        `it encodes to ${args.length} bytes, over the ${MAX_VALUE_BYTES}-byte limit of one message; send large data as a depends file`,
      );
    }
    const job = new DispyJob<Awaited<ReturnType<F>>>();
    const queued = this.scheduler.submit({
      computeId: this.computeId,
      priority,
      args,
      timeout,
      ref: job as DispyJob,
      pin,
      files: perJob?.files,
      definitions: perJob?.definitions,
    });
    this.ledger.track(queued, args);
    return job;
  }

  /**
   * Copies a file to a node, into the cluster's directory there (base name). Resolves 0, or -1
   * when the node does not serve the cluster.
   * @throws DispyError `DISPY_ERR_FILE` when the file cannot be read or the node refuses it;
   *   `DISPY_ERR_NO_ANSWER` when the node goes away first
   */
  async sendFile(file: string, node: DispyNode | string): Promise<number> {
    if (typeof file !== 'string' || file.length === 0) throw new OptionError(`sendFile: file must be a path, got ${String(file)}`);
    const key = await findNodeKey(node, this.ledger.nodes.values());
    if (!key) return -1;
    try {
      const [described] = await describeFiles([path.resolve(file)]);
      return (await this.whileActive(() => this.scheduler.sendFile(this.computeId, key, described!))) ? 0 : -1;
    } catch (error) {
      if (DispyError.isInstance(error)) throw error;
      throw new DispyError(ErrorCode.FILE, `sendFile: ${file} could not be sent: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * Cancels a job: a queued one is removed, a running one is killed on its node (its worker is
   * replaced). The job ends Cancelled. Resolves 0, or -1 when the job is already done.
   */
  async cancel(job: DispyJob): Promise<number> {
    const queued = this.ledger.jobs.get(job);
    if (!queued) return -1;
    switch (this.scheduler.cancel(queued)) {
      case 'dequeued':
        this.ledger.finish(queued, DispyJob.Cancelled, undefined, 'cancelled before it ran');
        return 0;
      case 'sent':
        return 0;
      default:
        return -1;
    }
  }

  /**
   * Adds nodes to the cluster: a host name, an address, a `*` pattern, or a NodeAllocate. Nodes
   * found from then on (and nodes already known that now match) are set up. Resolves 0.
   * @throws OptionError for another type, or a host name that does not resolve
   */
  async allocateNode(node: string | NodeAllocate): Promise<number> {
    const allocator = typeof node === 'string' ? new NodeAllocate(node) : node;
    if (!(allocator instanceof NodeAllocate)) {
      throw new OptionError(`allocateNode: node must be a host, an address, a pattern or a NodeAllocate, got ${typeof node}`);
    }
    await this.started;
    try {
      await this.scheduler.allocate(this.computeId, allocator);
    } catch (error) {
      throw new OptionError(`allocateNode: ${allocator.host} could not be resolved: ${(error as Error).message}`);
    }
    return 0;
  }

  /** Stops sending jobs to a node (its running jobs finish); 0, or -1 for an unknown node. */
  async deallocateNode(node: DispyNode | string): Promise<number> {
    const key = await findNodeKey(node, this.ledger.nodes.values());
    return key && (await this.scheduler.deallocate(this.computeId, key)) ? 0 : -1;
  }

  /**
   * Closes the cluster's computation on a node and stops using it. Its running jobs are
   * terminated (`terminatePending`) or finish first. 0, or -1 for an unknown node.
   */
  async closeNode(node: DispyNode | string, options: { terminatePending?: boolean } = {}): Promise<number> {
    const key = await findNodeKey(node, this.ledger.nodes.values());
    if (!key) return -1;
    const closed = await this.whileActive(() => this.scheduler.closeNode(this.computeId, key, options.terminatePending ?? false));
    return closed ? 0 : -1;
  }

  /** The cluster's jobs running on a node now: started by its workers (not those sent ahead that wait there; see `DispyNode.queued`). */
  async nodeJobs(node: DispyNode | string): Promise<DispyJob[]> {
    const key = await findNodeKey(node, this.ledger.nodes.values());
    if (!key) return [];
    return this.scheduler
      .runningOn(key)
      .filter((job) => job.computeId === this.computeId && this.ledger.isRunning(job.ref))
      .map((job) => job.ref);
  }

  /**
   * Sets how many CPUs of a node the cluster uses (negative: that many fewer than the node has);
   * its worker pool grows or shrinks. Resolves the CPUs now used, or -1 on failure.
   */
  async setNodeCpus(node: DispyNode | string, cpus: number): Promise<number> {
    if (!Number.isInteger(cpus)) throw new OptionError(`setNodeCpus: cpus must be an integer, got ${String(cpus)}`);
    const key = await findNodeKey(node, this.ledger.nodes.values());
    const known = key ? this.ledger.nodes.get(key) : undefined;
    if (!key || !known) return -1;
    const wanted = cpus < 0 ? known.availCpus + cpus : Math.min(cpus, known.availCpus);
    if (wanted < 1) return -1;
    const now = await this.whileActive(() => this.scheduler.setNodeCpus(this.computeId, key, wanted));
    if (now > 0) known.cpus = now;
    return now;
  }

  /** Resolves true when every submitted job is done, or false after `timeoutSeconds`. */
  wait(timeoutSeconds?: number): Promise<boolean> {
    return this.ledger.wait(timeoutSeconds);
  }

  /** The nodes serving the cluster and how many jobs are not done yet. */
  status(): { nodes: DispyNode[]; jobsPending: number } {
    for (const info of this.scheduler.nodesOf(this.computeId)) this.ledger.nodeOf(info);
    return { nodes: [...this.ledger.nodes.values()], jobsPending: this.ledger.jobs.size };
  }

  /** Prints the per-node table (CPUs, jobs done, CPU time, traffic) and returns it. */
  stats(): ClusterStats {
    const stats = clusterStats(this.status().nodes, this.createdAt);
    process.stdout.write(formatStats(stats));
    return stats;
  }

  /**
   * Waits for every job, then releases the nodes (which remove the computation's files unless
   * `cleanup: false`) and stops discovery. Safe to call more than once. With `timeout`
   * (seconds), jobs still unfinished then are cancelled (queued) or terminated on their nodes.
   */
  close(options: { timeout?: number } = {}): Promise<void> {
    this.closing ??= (async () => {
      await this.started;
      if (!(await this.wait(options.timeout))) {
        for (const job of [...this.ledger.jobs.values()]) {
          this.scheduler.drop(job);
          this.ledger.finish(
            job,
            DispyJob.Cancelled,
            undefined,
            `the cluster was closed after ${options.timeout} s before the job finished`,
          );
        }
      }
      await this.scheduler.close();
      this.recorder?.close();
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private monitor?: ClusterMonitor;

  /** @internal The cluster as `@dispy/monitor` sees it. */
  [MONITOR_SOURCE](): MonitorSource {
    this.monitor ??= new ClusterMonitor({
      name: this.name,
      ledger: this.ledger,
      nodes: () => this.status().nodes,
      runningOn: (key) => this.scheduler.runningOn(key).filter((job) => job.computeId === this.computeId),
      cancel: (job) => this.cancel(job),
      setNodeCpus: (node, cpus) => this.setNodeCpus(node, cpus),
      allocateNode: (host) => this.allocateNode(host),
      deallocateNode: (node) => this.deallocateNode(node),
      closeNode: (node) => this.closeNode(node),
    });
    return this.monitor;
  }

  /** Operations on nodes in progress (each keeps the process alive until it is answered). */
  private pendingOperations = 0;

  /** The process stays alive while jobs are unfinished or a node operation waits for its answer. */
  private refreshActive(): void {
    this.scheduler.setActive((this.ledger.jobs.size > 0 || this.pendingOperations > 0) && !this.startError);
  }

  /** Runs an operation on nodes, keeping the process alive until it settles. */
  private async whileActive<T>(operation: () => Promise<T>): Promise<T> {
    this.pendingOperations++;
    this.refreshActive();
    try {
      return await operation();
    } finally {
      this.pendingOperations--;
      this.refreshActive();
    }
  }

  private failStart(error: Error): void {
    this.startError = new DispyError(ErrorCode.START, `${this.kind} ${this.name} could not start: ${error.message}`, { cause: error });
    this.logger.error(this.startError.message);
    for (const job of [...this.ledger.jobs.values()]) {
      this.scheduler.drop(job);
      this.ledger.finish(job, DispyJob.Cancelled, undefined, this.startError.message);
    }
  }
}

/** Said once per cluster given `extIpAddr`, which has no use in this design. */
export const EXT_IP_ADDR_WARNING =
  'extIpAddr has no effect and is deprecated: the client opens every connection (to nodes and to a scheduler), so a client behind NAT ' +
  'needs no forwarded port and no announced address (see the guide "Remote networks")';

/** JobCluster's own scheduler, in this process: it finds the nodes and talks to them itself. */
function localScheduler({ options, given, tls, logger }: SchedulerContext): ClusterScheduler<DispyJob, unknown, NodeAllocate> {
  return new JobScheduler<DispyJob, unknown, NodeAllocate>({
    secret: options.secret,
    tls,
    ipAddr: [options.ipAddr ?? []].flat()[0],
    discoveryAddrs: [options.ipAddr ?? []].flat(),
    ipv4Multicast: options.ipv4UdpMulticast,
    port: options.port,
    portIsDefault: given.port === undefined,
    nodePort: options.nodePort,
    pingInterval: options.pingInterval,
    clientName: os.hostname(),
    logger,
    fileDir: path.resolve(options.fileDir ?? process.cwd()),
    maxFileSize: options.maxFileSize,
    maxJobFilesSize: options.maxJobFilesSize,
  });
}

/** Where a job for `node` must run: that node (a DispyNode), or any node at a host (an IP address or a name). */
function jobPin(node: DispyNode | string): JobPin {
  if (node instanceof DispyNode) return { key: `${node.ipAddr}:${node.port}` };
  if (typeof node !== 'string' || node.length === 0) {
    throw new OptionError(`submitNode: node must be a DispyNode, an IP address or a host name, got ${String(node)}`);
  }
  return { host: node };
}
