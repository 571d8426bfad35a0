import { spawn, type ChildProcess } from 'node:child_process';
import { workerEnv } from './worker-env.js';
import { decodeValue, encodeValue } from '@dispy/protocol';
import type { EncodedArguments, JobRunner } from './job-runner.js';
import type { JobOutcome } from './worker-pool.js';
import type { Logger } from '@dispy/protocol/internal';
import { CappedText, DEFAULT_MAX_OUTPUT_BYTES } from './output-limit.js';
import { JOB_MARK_VARIABLE, NODE_MARK_VARIABLE, Reaper, jobMark, nodeMarkEnv, nodeToken } from './process-marks.js';
import { CpuSlots, type CpuTenant } from './cpu-slots.js';

export interface ProgramPoolOptions {
  /** The program's path (in the computation's directory, made executable). */
  program: string;
  /** Working directory of every run. */
  dir: string;
  size: number;
  onDone: (outcome: JobOutcome) => void;
  /** A job's program was started (epoch ms). */
  onStarted?: (jobId: number, startTime: number) => void;
  /** Cap on each of a run's stdout and stderr, in bytes (0: none; default 1 MiB). */
  maxOutputBytes?: number;
  logger?: Logger;
  /** The node's CPUs, shared with other computations: a run starts only with a slot (default: a pool of its own). */
  slots?: CpuSlots;
}

interface Run {
  child: ChildProcess;
  startTime: number;
  stdout: CappedText;
  stderr: CappedText;
  cancelled?: boolean;
  timedOut?: boolean;
  timeoutMs: number;
  timer?: NodeJS.Timeout;
}

const KILL_GRACE_MS = 1000;

/**
 * Runs a program computation: one process per job (a program is its own process), at most
 * `size` at a time, in the computation's directory with the job's string arguments. The result
 * is the exit status; a program killed by a signal ends Terminated with the signal named.
 */
export class ProgramPool implements JobRunner {
  private readonly running = new Map<number, Run>();
  private backlog: Array<{ jobId: number; args: EncodedArguments; timeoutMs: number }> = [];
  private closing = false;
  /** Kills what a program left running once it exits. */
  private readonly reaper: Reaper;
  private readonly slots: CpuSlots;
  /** This pool as the node's CPU slots know it: each slot granted starts one run. */
  private readonly tenant: CpuTenant = { grant: () => this.launchNext() };

  constructor(private readonly options: ProgramPoolOptions) {
    this.reaper = new Reaper(options.logger);
    this.slots = options.slots ?? new CpuSlots(Infinity);
  }

  get size(): number {
    return this.options.size;
  }

  async start(): Promise<void> {}

  run(jobId: number, args: EncodedArguments, timeoutMs = 0): void {
    this.backlog.push({ jobId, args, timeoutMs });
    this.pump();
  }

  cancel(jobId: number): boolean {
    const waiting = this.backlog.findIndex((job) => job.jobId === jobId);
    if (waiting >= 0) {
      this.backlog.splice(waiting, 1);
      const now = Date.now();
      this.options.onDone({ jobId, ok: false, cancelled: true, stdout: '', stderr: '', startTime: now, endTime: now, cpuTime: 0 });
      return true;
    }
    const run = this.running.get(jobId);
    if (!run) return false;
    run.cancelled = true;
    kill(run.child);
    return true;
  }

  async reclaim(jobIds: readonly number[]): Promise<number[]> {
    const wanted = new Set(jobIds);
    const dropped = this.backlog.filter((job) => wanted.has(job.jobId)).map((job) => job.jobId);
    this.backlog = this.backlog.filter((job) => !wanted.has(job.jobId));
    return dropped;
  }

  runningJobs(): number[] {
    return [...this.running.keys()];
  }

  async resize(size: number): Promise<void> {
    this.options.size = size;
    this.pump();
  }

  async runCleanup(): Promise<string | undefined> {
    return 'a program computation has no cleanup function';
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const { jobId } of this.backlog) this.cancel(jobId);
    const exits = [...this.running.values()].map((run) => {
      run.cancelled = true;
      return new Promise<void>((resolve) => {
        run.child.once('close', () => resolve());
        kill(run.child);
      });
    });
    await Promise.all(exits);
    this.slots.remove(this.tenant);
    await this.reaper.settled();
  }

  /** Runs wait: the pool asks the node for CPU slots (each granted starts one, see launchNext). */
  private pump(): void {
    if (!this.closing && this.backlog.length > 0) this.slots.want(this.tenant);
  }

  /** A CPU slot is ours: starts the next run (false: none waits, or `size` run already). */
  private launchNext(): boolean {
    if (this.closing || this.running.size >= this.options.size || this.backlog.length === 0) return false;
    const { jobId, args, timeoutMs } = this.backlog.shift()!;
    this.launch(jobId, args, timeoutMs);
    return true;
  }

  private launch(jobId: number, args: EncodedArguments, timeoutMs: number): void {
    const argv = ((decodeValue(Buffer.concat(args)) as unknown[] | undefined) ?? []).map(String);
    // The program and whatever it starts carry the job's mark (process-marks.ts): all are killed when it exits.
    const env = nodeMarkEnv(workerEnv(), nodeToken());
    const mark = jobMark(env[NODE_MARK_VARIABLE]!, 0, jobId);
    env[JOB_MARK_VARIABLE] = mark;
    const child = spawn(this.options.program, argv, { cwd: this.options.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const maxOutputBytes = this.options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    const run: Run = {
      child,
      startTime: Date.now(),
      stdout: new CappedText(maxOutputBytes),
      stderr: new CappedText(maxOutputBytes),
      timeoutMs,
    };
    this.running.set(jobId, run);
    this.options.onStarted?.(jobId, run.startTime);
    child.stdout.setEncoding('utf8').on('data', (text: string) => run.stdout.push(text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => run.stderr.push(text));
    if (timeoutMs > 0) {
      run.timer = setTimeout(() => {
        run.timedOut = true;
        kill(child);
      }, timeoutMs);
    }
    let failed: Error | undefined;
    child.once('error', (error) => (failed = error));
    // At its exit, not at 'close': what it left running may hold its stdout open, and 'close' waits for that.
    child.once('exit', () => this.reaper.reap({ variable: JOB_MARK_VARIABLE, value: mark }, `job ${jobId}`));
    child.once('close', (code, signal) => {
      clearTimeout(run.timer);
      this.running.delete(jobId);
      const base = {
        jobId,
        stdout: run.stdout.text('stdout'),
        stderr: run.stderr.text('stderr'),
        startTime: run.startTime,
        endTime: Date.now(),
        cpuTime: 0,
      };
      if (run.cancelled)
        this.options.onDone({ ...base, ok: false, cancelled: true, exception: 'dispy: the job was cancelled; its program was stopped' });
      else if (run.timedOut)
        this.options.onDone({
          ...base,
          ok: false,
          exception: `dispy: the job timed out after ${timeoutMs / 1000} s; its program was stopped`,
        });
      else if (failed) this.options.onDone({ ...base, ok: false, exception: `dispy: the program could not run: ${failed.message}` });
      else if (signal) this.options.onDone({ ...base, ok: false, exception: `dispy: the program was killed by ${signal}` });
      else this.options.onDone({ ...base, ok: true, result: encodeValue(code) });
      this.slots.release(this.tenant);
      this.pump();
    });
  }
}

function kill(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS).unref();
}
