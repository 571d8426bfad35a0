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

interface Worker {
  child: ChildProcess;
  ready: boolean;
  job?: { jobId: number; startTime: number; cancelled?: boolean };
}

/** Grace a killed worker gets between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 1000;

/**
 * Reusable worker processes for one computation, one per CPU. Each worker loads the computation
 * once and runs one job at a time. A worker that dies (crash, `process.exit`, OOM, native fault)
 * ends only its job, which is reported Terminated with the reason, and is replaced.
 */
export class WorkerPool {
  private readonly workers = new Set<Worker>();
  private readonly backlog: Array<{ jobId: number; args: Uint8Array }> = [];
  private closing = false;
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

  /** Runs a job on an idle worker, or as soon as one is free. */
  run(jobId: number, args: Uint8Array): void {
    const idle = this.idleWorker();
    if (idle) this.assign(idle, jobId, args);
    else this.backlog.push({ jobId, args });
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
      const now = Date.now();
      this.options.onDone({ jobId, ok: false, cancelled: true, stdout: '', stderr: '', startTime: now, endTime: now, cpuTime: 0 });
      return true;
    }
    for (const worker of this.workers) {
      if (worker.job?.jobId !== jobId) continue;
      worker.job.cancelled = true;
      void this.kill(worker);
      return true;
    }
    return false;
  }

  /** Jobs running now. */
  runningJobs(): number[] {
    return [...this.workers].flatMap((worker) => (worker.job ? [worker.job.jobId] : []));
  }

  /** Kills every worker (SIGTERM, then SIGKILL after a grace) and waits until all have exited. */
  async close(): Promise<void> {
    this.closing = true;
    this.backlog.length = 0;
    await Promise.all([...this.workers].map((worker) => this.kill(worker)));
  }

  private idleWorker(): Worker | undefined {
    for (const worker of this.workers) if (worker.ready && !worker.job) return worker;
    return undefined;
  }

  private assign(worker: Worker, jobId: number, args: Uint8Array): void {
    worker.job = { jobId, startTime: Date.now() };
    worker.child.send({ type: 'job', jobId, args });
  }

  private spawn(): Promise<void> {
    const { init, logger } = this.options;
    const child = fork(workerRuntimePath(), [], {
      cwd: init.computeDir,
      execArgv: [],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const worker: Worker = { child, ready: false };
    this.workers.add(worker);
    child.send(init);
    return new Promise<void>((resolve, reject) => {
      child.on('message', (message: FromWorker) => {
        switch (message.type) {
          case 'ready':
            worker.ready = true;
            resolve();
            this.feed(worker);
            break;
          case 'init-failed':
            reject(new Error(`the computation failed to load: ${message.error}`));
            this.kill(worker);
            break;
          case 'done': {
            const { type: _type, ...outcome } = message;
            worker.job = undefined;
            this.options.onDone(outcome);
            this.feed(worker);
            break;
          }
        }
      });
      child.on('error', (error) => logger.warn(`worker ${child.pid}: ${error.message}`));
      child.on('exit', (code, signal) => {
        this.workers.delete(worker);
        if (!worker.ready) reject(new Error(`worker process exited before loading the computation (${exitReason(code, signal)})`));
        if (worker.job) {
          const now = Date.now();
          const { cancelled } = worker.job;
          this.options.onDone({
            jobId: worker.job.jobId,
            ok: false,
            cancelled,
            exception: cancelled
              ? 'dispy: the job was cancelled; its worker process was stopped'
              : `dispy: the worker process running this job exited (${exitReason(code, signal)}); ` +
                'the job called process.exit, crashed, or ran out of memory',
            stdout: '',
            stderr: '',
            startTime: worker.job.startTime,
            endTime: now,
            cpuTime: 0,
          });
          worker.job = undefined;
        }
        if (!this.closing && worker.ready && this.workers.size < this.wanted) {
          // A killed or crashed worker is replaced, so the pool keeps one worker per CPU.
          logger.debug(`worker ${child.pid} exited (${exitReason(code, signal)}); starting a replacement`);
          this.spawn().catch((error: Error) => logger.error(`could not replace a worker: ${error.message}`));
        }
      });
    });
  }

  private feed(worker: Worker): void {
    const next = this.backlog.shift();
    if (next && worker.ready && !worker.job) this.assign(worker, next.jobId, next.args);
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
