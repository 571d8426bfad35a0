import { fork, type ChildProcess } from 'node:child_process';
import { workerEnv } from './worker-env.js';
import type { Socket } from 'node:net';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from '@dispy/protocol/internal';
import type { Definition, FromWorker, WorkerDone, WorkerInit } from './worker-messages.js';
import { JOB_CHANNEL_FD, JobChannelWriter } from './job-channel.js';
import type { EncodedArguments, JobRunner } from './job-runner.js';
import { JOB_MARK_VARIABLE, Reaper, jobMark, nodeMarkEnv, nodeToken } from './process-marks.js';
import { CpuSlots, type CpuTenant } from './cpu-slots.js';

/** Path of the worker entry: beside this file once built, or in dist/ when run from source. */
function workerRuntimePath(): string {
  for (const candidate of ['./worker-runtime.js', '../../dist/worker-runtime.js']) {
    const path = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error('dispy: worker-runtime.js not found; build @dispy/node first (pnpm build)');
}

/** How a job ended as the pool saw it. */
export type JobOutcome = Omit<WorkerDone, 'type'>;

export interface WorkerPoolOptions {
  size: number;
  init: WorkerInit;
  logger: Logger;
  /** Called once per job run, in the order jobs end. */
  onDone: (outcome: JobOutcome) => void;
  /** A worker started a job (epoch ms, as the node saw it: when its worker had it next). */
  onStarted?: (jobId: number, startTime: number) => void;
  /** A computation asked the node to shut down. */
  onShutdownRequest?: () => void;
  /** A job sent an intermediate result. */
  onProvisional?: (jobId: number, result: Uint8Array) => void;
  /** A job asked for a file (absolute path) to go to the client; resolve or reject when done. */
  onSendFile?: (jobId: number, file: string) => Promise<void>;
  /** The node's CPUs, shared with other computations: a worker runs jobs only while it holds a slot (default: a pool of its own). */
  slots?: CpuSlots;
}

interface Waiting {
  jobId: number;
  args: EncodedArguments;
  definitions?: Definition[];
  /** Milliseconds the job may run once started; 0: no limit. */
  timeoutMs: number;
}

interface Assigned extends Waiting {
  assignedAt: number;
  cancelled?: boolean;
  timedOut?: boolean;
  /** Set while the job is the one its worker runs (the first of its list). */
  timer?: NodeJS.Timeout;
  /** Its start was reported (onStarted). */
  startReported?: boolean;
}

interface Worker {
  child: ChildProcess;
  /** The node's mark in its environment, and so in its jobs' marks. */
  token: string;
  /** Jobs and drops go here, in order. */
  channel: JobChannelWriter;
  ready: boolean;
  /** Stop after the jobs it has (the pool is shrinking). */
  retire?: boolean;
  /** Exiting after an error escaped a job: it starts no other job. */
  dying?: boolean;
  onCleanupDone?: (error?: string) => void;
  /** Jobs sent to this worker and not reported yet, in order: the first is running. */
  jobs: Assigned[];
  /** It holds one of the node's CPU slots (from its batch's start until its last job ends). */
  slot?: boolean;
  /** Reclaims asked of it and not yet answered: job id -> what to do with its answer. */
  reclaims: Map<number, (dropped: boolean) => void>;
}

/** Grace a killed worker gets between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 1000;

/** Most jobs sent to an idle worker at once. */
const MAX_BATCH = 4;

/**
 * Reusable worker processes for one computation, one per CPU. Each worker loads the computation
 * once and runs one job at a time. Jobs wait here until a worker is idle; an idle worker gets
 * its share of the waiting jobs in one write (at most MAX_BATCH), which it runs in order,
 * reporting each result at once. A worker that dies (crash, `process.exit`, OOM, native fault)
 * ends only its running job, which is reported Terminated with the reason; jobs queued behind it
 * go back to the wait list, and the worker is replaced.
 */
export class WorkerPool implements JobRunner {
  private readonly workers = new Set<Worker>();
  private backlog: Waiting[] = [];
  private closing = false;
  private dispatchScheduled = false;
  private wanted: number;
  /** Kills what jobs left running: after a job that started a process, and after a worker exits. */
  private readonly reaper: Reaper;
  private readonly slots: CpuSlots;
  /** This pool as the node's CPU slots know it: a slot granted starts a batch on an idle worker. */
  private readonly tenant: CpuTenant = { grant: () => this.startBatch() };

  constructor(private readonly options: WorkerPoolOptions) {
    this.reaper = new Reaper(options.logger);
    this.wanted = options.size;
    this.slots = options.slots ?? new CpuSlots(Infinity);
  }

  get size(): number {
    return this.wanted;
  }

  /**
   * Starts every worker; rejects with the computation's load error if it fails to load. With a
   * `setup` function, one worker starts (and runs setup) first, and the others only once it
   * succeeded: setup runs in every worker, and one that works once but not twice (it deletes the
   * file it read, as dispy's examples do) is then named as such.
   */
  async start(): Promise<void> {
    const staged = this.options.init.setup !== undefined && this.wanted > 1;
    let firstStarted = false;
    const starting: Promise<void>[] = [];
    try {
      if (staged) {
        await this.spawn();
        firstStarted = true;
      }
      for (let i = staged ? 1 : 0; i < this.wanted; i++) starting.push(this.spawn());
      await Promise.all(starting);
    } catch (error) {
      await this.close();
      throw firstStarted ? laterSetupFailed(error as Error) : error;
    }
  }

  /** Runs a job as soon as a worker is free; `timeoutMs` (0: none) limits its run time. */
  run(jobId: number, args: EncodedArguments, timeoutMs = 0, definitions?: Definition[]): void {
    this.backlog.push({ jobId, args, timeoutMs, definitions });
    // Jobs that arrive in one read of the socket are handed out together.
    if (!this.dispatchScheduled) {
      this.dispatchScheduled = true;
      setImmediate(() => {
        this.dispatchScheduled = false;
        this.dispatch();
      });
    }
  }

  /**
   * Cancels a job: one still waiting is dropped, one running has its worker killed (a tight
   * loop included) and replaced. Either way the job is reported once, as cancelled. Returns
   * false when the job is not here.
   */
  cancel(jobId: number): boolean {
    const waiting = this.backlog.findIndex((job) => job.jobId === jobId);
    if (waiting >= 0) {
      this.backlog.splice(waiting, 1);
      this.reportCancelled(jobId);
      return true;
    }
    for (const worker of this.workers) {
      const index = worker.jobs.findIndex((job) => job.jobId === jobId);
      if (index < 0) continue;
      if (index === 0) {
        worker.jobs[0]!.cancelled = true;
        void this.kill(worker);
      } else {
        // Queued behind another job in that worker: forget it here and there. Should the worker
        // have started it meanwhile, its result is ignored: the job was reported cancelled.
        worker.jobs.splice(index, 1);
        worker.channel.send([{ message: { type: 'drop', jobId } }]);
        this.reportCancelled(jobId);
      }
      return true;
    }
    return false;
  }

  /**
   * Gives back jobs no worker has started: those in the backlog at once, those queued in a worker
   * behind its running job once the worker says it dropped them (it may have started one
   * meanwhile: then it runs here). Dropped jobs are forgotten without a report.
   */
  async reclaim(jobIds: readonly number[]): Promise<number[]> {
    const wanted = new Set(jobIds);
    const dropped = this.backlog.filter((job) => wanted.has(job.jobId)).map((job) => job.jobId);
    this.backlog = this.backlog.filter((job) => !wanted.has(job.jobId));
    const asked: Promise<number | undefined>[] = [];
    for (const worker of this.workers) {
      for (const job of worker.jobs.slice(1)) {
        if (!wanted.has(job.jobId) || worker.reclaims.has(job.jobId) || worker.dying) continue;
        asked.push(
          new Promise<number | undefined>((resolve) => {
            worker.reclaims.set(job.jobId, (yes) => resolve(yes ? job.jobId : undefined));
          }),
        );
        worker.channel.send([{ message: { type: 'reclaim', jobId: job.jobId } }]);
      }
    }
    for (const jobId of await Promise.all(asked)) if (jobId !== undefined) dropped.push(jobId);
    return dropped;
  }

  /**
   * A worker went idle with nothing waiting: jobs queued in other workers behind a running one
   * (a batch can hold a long job and the jobs after it, while the worker that got the short
   * ones is idle) are taken back, the later half of each such queue, and handed out again. A
   * worker that started one meanwhile runs it; only those it says it dropped move.
   */
  private rebalance(): void {
    if (this.closing) return;
    for (const worker of this.workers) {
      if (worker.dying || worker.retire) continue;
      const queued = worker.jobs.slice(1).filter((job) => !worker.reclaims.has(job.jobId) && !job.cancelled);
      for (const job of queued.slice(Math.floor(queued.length / 2))) {
        worker.reclaims.set(job.jobId, (dropped) => {
          if (!dropped || this.closing) return;
          const { jobId, args, timeoutMs, definitions } = job;
          this.backlog.unshift({ jobId, args, timeoutMs, definitions });
          this.dispatch();
        });
        worker.channel.send([{ message: { type: 'reclaim', jobId: job.jobId } }]);
      }
    }
  }

  /**
   * Changes the number of workers. New ones start at once; when shrinking, idle workers stop at
   * once and busy ones after their current job. Resolves when the new workers are ready.
   */
  async resize(size: number): Promise<void> {
    this.wanted = size;
    const starting: Promise<void>[] = [];
    for (let i = this.workers.size - this.retiring(); i < size; i++) starting.push(this.spawn());
    let excess = this.workers.size - this.retiring() - size;
    // Idle workers go first, busy ones after their jobs.
    const byLoad = [...this.workers].filter((worker) => !worker.retire).sort((a, b) => a.jobs.length - b.jobs.length);
    for (const worker of byLoad) {
      if (excess-- <= 0) break;
      worker.retire = true;
      if (worker.jobs.length === 0) void this.kill(worker);
    }
    await Promise.all(starting);
  }

  /**
   * Runs the computation's cleanup function once, in an idle worker, before the pool closes.
   * Resolves with the error text if it threw (or did not finish in 30 s).
   */
  async runCleanup(cleanup: Definition): Promise<string | undefined> {
    const worker = [...this.workers].find((w) => w.ready && w.jobs.length === 0) ?? [...this.workers].find((w) => w.ready);
    if (!worker) return 'no worker to run cleanup in';
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve('cleanup did not finish in 30 s'), 30_000);
      worker.onCleanupDone = (error) => {
        clearTimeout(timer);
        resolve(error);
      };
      worker.child.send({ type: 'cleanup', cleanup });
    });
  }

  /** Jobs running now (the first job of each busy worker). */
  runningJobs(): number[] {
    return [...this.workers].flatMap((worker) => (worker.jobs[0] ? [worker.jobs[0].jobId] : []));
  }

  /**
   * Kills every worker (SIGTERM, then SIGKILL after a grace) and waits until all have exited, and
   * every process their jobs started is killed.
   */
  async close(): Promise<void> {
    this.closing = true;
    for (const { jobId } of this.backlog) this.reportCancelled(jobId);
    this.backlog = [];
    for (const worker of this.workers) for (const job of worker.jobs) job.cancelled = true;
    await Promise.all([...this.workers].map((worker) => this.kill(worker)));
    this.slots.remove(this.tenant);
    await this.reaper.settled();
  }

  /** Jobs wait: the pool asks the node for CPU slots, and starts a batch on an idle worker with each it gets. */
  private dispatch(): void {
    if (this.backlog.length > 0 && !this.closing) this.slots.want(this.tenant);
  }

  /** A CPU slot is ours: an idle worker gets its share of the waiting jobs (false: no job or no idle worker). */
  private startBatch(): boolean {
    if (this.closing || this.backlog.length === 0) return false;
    const idle = [...this.workers].filter((worker) => worker.ready && !worker.retire && !worker.dying && worker.jobs.length === 0);
    const worker = idle[0];
    if (!worker) return false;
    const share = Math.min(MAX_BATCH, Math.ceil(this.backlog.length / idle.length));
    const batch = this.backlog.splice(0, share);
    const now = Date.now();
    worker.slot = true;
    worker.jobs.push(...batch.map((job) => ({ ...job, assignedAt: now })));
    worker.channel.send(batch.map(({ jobId, args, definitions }) => ({ message: { type: 'job', jobId, definitions }, args })));
    this.armTimeout(worker);
    this.reportStarted(worker);
    return true;
  }

  /** The job a worker runs now (the first of its list) is reported started, once. */
  private reportStarted(worker: Worker): void {
    const running = worker.jobs[0];
    if (!running || running.startReported) return;
    running.startReported = true;
    this.options.onStarted?.(running.jobId, Date.now());
  }

  /** A worker's jobs have all ended (or it exited): its CPU slot goes back to the node. */
  private releaseSlot(worker: Worker): void {
    if (!worker.slot) return;
    worker.slot = false;
    this.slots.release(this.tenant);
  }

  private spawn(): Promise<void> {
    const { init, logger } = this.options;
    const token = nodeToken();
    const child = fork(workerRuntimePath(), [], {
      cwd: init.computeDir,
      env: nodeMarkEnv(workerEnv(), token),
      execArgv: [],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'inherit', 'ipc', 'pipe'],
    });
    const channel = child.stdio[JOB_CHANNEL_FD] as Socket;
    const worker: Worker = { child, token, channel: new JobChannelWriter(channel), ready: false, jobs: [], reclaims: new Map() };
    // A worker whose job channel broke can take no job: stop it, and its exit hands its jobs on.
    channel.once('close', () => void this.kill(worker));
    this.workers.add(worker);
    child.send(init);
    return new Promise<void>((resolve, reject) => {
      child.on('message', (message: FromWorker) => {
        switch (message.type) {
          case 'ready':
            worker.ready = true;
            resolve();
            this.dispatch();
            break;
          case 'shutdown-request':
            this.options.onShutdownRequest?.();
            break;
          case 'provisional':
            if (worker.jobs[0]?.jobId === message.jobId) this.options.onProvisional?.(message.jobId, message.result);
            break;
          case 'send-file': {
            const { requestId } = message;
            const sending = this.options.onSendFile?.(message.jobId, message.path) ?? Promise.reject(new Error('not supported here'));
            sending.then(
              () => child.connected && child.send({ type: 'send-file-done', requestId }),
              (error: Error) => child.connected && child.send({ type: 'send-file-done', requestId, error: error.message }),
            );
            break;
          }
          case 'reclaimed': {
            const answer = worker.reclaims.get(message.jobId);
            worker.reclaims.delete(message.jobId);
            const index = message.dropped ? worker.jobs.findIndex((job) => job.jobId === message.jobId) : -1;
            // Never its running job: a worker drops only jobs it has not started.
            if (index > 0) worker.jobs.splice(index, 1);
            answer?.(index > 0);
            break;
          }
          case 'cleanup-done':
            worker.onCleanupDone?.(message.error);
            break;
          case 'init-failed':
            reject(new Error(`the computation failed to load: ${message.error}`));
            void this.kill(worker);
            break;
          case 'done': {
            const { type: _type, ...outcome } = message;
            const index = worker.jobs.findIndex((job) => job.jobId === outcome.jobId);
            if (index < 0) break; // cancelled while queued: already reported
            clearTimeout(worker.jobs[index]!.timer);
            worker.jobs.splice(index, 1);
            if (outcome.fatal) worker.dying = true;
            if (outcome.spawned) {
              const mark = jobMark(token, child.pid!, outcome.jobId);
              this.reaper.reap({ variable: JOB_MARK_VARIABLE, value: mark }, `job ${outcome.jobId}`);
            }
            this.options.onDone(outcome);
            if (worker.dying) break; // its exit hands the jobs it still holds to other workers
            this.armTimeout(worker);
            this.reportStarted(worker);
            if (worker.jobs.length > 0) break;
            this.releaseSlot(worker);
            if (worker.retire) void this.kill(worker);
            else if (this.backlog.length > 0) this.dispatch();
            else this.rebalance();
            break;
          }
        }
      });
      child.on('error', (error) => logger.warn(`worker ${child.pid}: ${error.message}`));
      child.on('exit', (code, signal) => {
        this.workers.delete(worker);
        // Whatever its jobs started and left running (a job killed for its timeout, cancelled, or
        // cut short by the pool's close, had no chance to end them).
        if (child.pid !== undefined) {
          this.reaper.reap({ variable: JOB_MARK_VARIABLE, value: `${token}.${child.pid}.`, prefix: true }, `worker ${child.pid}`);
        }
        if (!worker.ready) reject(new Error(`worker process exited before loading the computation (${exitReason(code, signal)})`));
        // A dying worker started none of the jobs it still holds; others ran the first.
        const running = worker.dying ? undefined : worker.jobs[0];
        const queued = worker.dying ? worker.jobs : worker.jobs.slice(1);
        worker.jobs = [];
        // Reclaims it did not answer: the jobs go back to the backlog below, and run here.
        for (const answer of worker.reclaims.values()) answer(false);
        worker.reclaims.clear();
        this.releaseSlot(worker);
        if (running) {
          clearTimeout(running.timer);
          this.reportLost(running, exitReason(code, signal));
        }
        // Jobs queued behind it never started: they wait for another worker (or, when the pool
        // is closing, end cancelled).
        if (this.closing) {
          for (const { jobId } of queued) this.reportCancelled(jobId);
        } else {
          this.backlog.unshift(...queued.map(({ jobId, args, timeoutMs, definitions }) => ({ jobId, args, timeoutMs, definitions })));
          this.dispatch();
        }
        if (!this.closing && worker.ready && this.workers.size < this.wanted) {
          // A killed or crashed worker is replaced, so the pool keeps one worker per CPU.
          logger.debug(`worker ${child.pid} exited (${exitReason(code, signal)}); starting a replacement`);
          this.spawn().catch((error: Error) => {
            if (!this.closing) logger.error(`could not replace a worker: ${error.message}`);
          });
        }
      });
    });
  }

  private reportCancelled(jobId: number): void {
    const now = Date.now();
    this.options.onDone({ jobId, ok: false, cancelled: true, stdout: '', stderr: '', startTime: now, endTime: now, cpuTime: 0 });
  }

  private reportLost(job: Assigned, reason: string): void {
    this.options.onDone({
      jobId: job.jobId,
      ok: false,
      cancelled: job.cancelled,
      exception: job.cancelled
        ? 'dispy: the job was cancelled; its worker process was stopped'
        : job.timedOut
          ? `dispy: the job timed out after ${job.timeoutMs / 1000} s; its worker process was stopped`
          : `dispy: the worker process running this job exited (${reason}); ` +
            'the job called process.exit, crashed, or ran out of memory',
      stdout: '',
      stderr: '',
      startTime: job.assignedAt,
      endTime: Date.now(),
      cpuTime: 0,
    });
  }

  /** Starts the run-time limit of the job a worker is now running, if it has one. */
  private armTimeout(worker: Worker): void {
    const running = worker.jobs[0];
    if (!running || running.timeoutMs <= 0 || running.timer) return;
    running.timer = setTimeout(() => {
      running.timedOut = true;
      void this.kill(worker);
    }, running.timeoutMs);
  }

  private retiring(): number {
    let count = 0;
    for (const worker of this.workers) if (worker.retire) count++;
    return count;
  }

  private kill(worker: Worker): Promise<void> {
    const { child } = worker;
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const force = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
      child.once('exit', () => {
        clearTimeout(force);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}

/** A worker's setup failed after the first worker's had succeeded: say that setup runs in each. */
function laterSetupFailed(error: Error): Error {
  return new Error(
    'setup succeeded in the first worker process of this node but failed in another; setup runs in every worker process ' +
      '(see the guide "Depends and files", "setup: prepare each worker": keep the files setup reads, or remove them in cleanup): ' +
      error.message,
  );
}

function exitReason(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exit code ${code}`;
}
