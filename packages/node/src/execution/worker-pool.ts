import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from '@dispy/protocol';
import type { FromWorker, WorkerDone, WorkerInit } from './worker-messages.js';

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
}

interface Assigned {
  jobId: number;
  args: Uint8Array;
  assignedAt: number;
  cancelled?: boolean;
}

interface Worker {
  child: ChildProcess;
  ready: boolean;
  /** Jobs sent to this worker and not reported yet, in order: the first is running. */
  jobs: Assigned[];
}

/** Grace a killed worker gets between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 1000;

/** Most jobs sent to an idle worker in one message. */
const MAX_BATCH = 4;

/**
 * Reusable worker processes for one computation, one per CPU. Each worker loads the computation
 * once and runs one job at a time. Jobs wait here until a worker is idle; an idle worker gets
 * its share of the waiting jobs in one message (at most MAX_BATCH), which it runs in order,
 * reporting each result at once. A worker that dies (crash, `process.exit`, OOM, native fault)
 * ends only its running job, which is reported Terminated with the reason; jobs queued behind it
 * go back to the wait list, and the worker is replaced.
 */
export class WorkerPool {
  private readonly workers = new Set<Worker>();
  private backlog: Array<{ jobId: number; args: Uint8Array }> = [];
  private closing = false;
  private dispatchScheduled = false;
  private wanted: number;

  constructor(private readonly options: WorkerPoolOptions) {
    this.wanted = options.size;
  }

  get size(): number {
    return this.wanted;
  }

  /** Starts every worker; rejects with the computation's load error if it fails to load. */
  async start(): Promise<void> {
    const starting: Promise<void>[] = [];
    for (let i = 0; i < this.wanted; i++) starting.push(this.spawn());
    try {
      await Promise.all(starting);
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /** Runs a job as soon as a worker is free. */
  run(jobId: number, args: Uint8Array): void {
    this.backlog.push({ jobId, args });
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
        worker.child.send({ type: 'drop', jobId });
        this.reportCancelled(jobId);
      }
      return true;
    }
    return false;
  }

  /** Jobs running now (the first job of each busy worker). */
  runningJobs(): number[] {
    return [...this.workers].flatMap((worker) => (worker.jobs[0] ? [worker.jobs[0].jobId] : []));
  }

  /** Kills every worker (SIGTERM, then SIGKILL after a grace) and waits until all have exited. */
  async close(): Promise<void> {
    this.closing = true;
    this.backlog = [];
    await Promise.all([...this.workers].map((worker) => this.kill(worker)));
  }

  private dispatch(): void {
    if (this.backlog.length === 0) return;
    const idle = [...this.workers].filter((worker) => worker.ready && worker.jobs.length === 0);
    for (let i = 0; i < idle.length && this.backlog.length > 0; i++) {
      const share = Math.min(MAX_BATCH, Math.ceil(this.backlog.length / (idle.length - i)));
      const batch = this.backlog.splice(0, share);
      const now = Date.now();
      const worker = idle[i]!;
      worker.jobs.push(...batch.map((job) => ({ ...job, assignedAt: now })));
      worker.child.send({ type: 'jobs', jobs: batch });
    }
  }

  private spawn(): Promise<void> {
    const { init, logger } = this.options;
    const child = fork(workerRuntimePath(), [], {
      cwd: init.computeDir,
      execArgv: [],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const worker: Worker = { child, ready: false, jobs: [] };
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
          case 'init-failed':
            reject(new Error(`the computation failed to load: ${message.error}`));
            void this.kill(worker);
            break;
          case 'done': {
            const { type: _type, ...outcome } = message;
            const before = worker.jobs.length;
            worker.jobs = worker.jobs.filter((job) => job.jobId !== outcome.jobId);
            if (worker.jobs.length < before) this.options.onDone(outcome);
            if (worker.jobs.length === 0) this.dispatch();
            break;
          }
        }
      });
      child.on('error', (error) => logger.warn(`worker ${child.pid}: ${error.message}`));
      child.on('exit', (code, signal) => {
        this.workers.delete(worker);
        if (!worker.ready) reject(new Error(`worker process exited before loading the computation (${exitReason(code, signal)})`));
        const [running, ...queued] = worker.jobs;
        worker.jobs = [];
        if (running) this.reportLost(running, exitReason(code, signal));
        // Jobs queued behind it never started: they wait for another worker.
        if (!this.closing) this.backlog.unshift(...queued.map(({ jobId, args }) => ({ jobId, args })));
        if (!this.closing && worker.ready && this.workers.size < this.wanted) {
          // A killed or crashed worker is replaced, so the pool keeps one worker per CPU.
          logger.debug(`worker ${child.pid} exited (${exitReason(code, signal)}); starting a replacement`);
          this.spawn().catch((error: Error) => logger.error(`could not replace a worker: ${error.message}`));
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
        : `dispy: the worker process running this job exited (${reason}); ` +
          'the job called process.exit, crashed, or ran out of memory',
      stdout: '',
      stderr: '',
      startTime: job.assignedAt,
      endTime: Date.now(),
      cpuTime: 0,
    });
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

function exitReason(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exit code ${code}`;
}
