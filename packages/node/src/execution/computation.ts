import { chmod, lstat, rm } from 'node:fs/promises';
import path from 'node:path';
import { confine, confineReal, dispy, fileSha256 } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import { WorkerPool, type JobOutcome, type WorkerPoolOptions } from './worker-pool.js';
import { ProgramPool } from './program-pool.js';
import type { EncodedArguments, JobRunner } from './job-runner.js';
import type { Definition } from './worker-messages.js';
import { fitReply } from './reply-size.js';
import type { CpuSlots } from './cpu-slots.js';

/** A computation's options; what its jobs report goes to the callbacks of its worker pool. */
export interface ComputationOptions extends Pick<
  WorkerPoolOptions,
  'onDone' | 'onStarted' | 'onShutdownRequest' | 'onProvisional' | 'onSendFile'
> {
  setup: dispy.ISetup;
  cpus: number;
  destPathPrefix: string;
  nodeName: string;
  nodeAddress: string;
  logger: Logger;
  /** Cap on each of a job's stdout, stderr and exception text, in bytes (0: none; default 1 MiB). */
  maxOutputBytes?: number;
  /** The node's CPUs, which every computation's jobs share (default: this computation's own `cpus`). */
  slots?: CpuSlots;
}

/** A file expected by name: resolved when it arrives whole, rejected when its transfer fails. */
interface Expected {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * A computation installed on this node for a client: its directory, the files it was sent,
 * and what runs its jobs (worker processes for a function, spawns for a program).
 */
export class Computation {
  readonly id: string;
  readonly dir: string;
  private runner?: JobRunner;
  private readonly expected = new Map<string, Expected>();
  /** Names of the files sent at setup (a per-job file may not take one of them). */
  private readonly setupFiles: Set<string>;
  /** Per-job files: how many waiting or running jobs use each. */
  private readonly jobFileUses = new Map<string, number>();
  private readonly jobFiles = new Map<number, string[]>();

  private constructor(
    private readonly options: ComputationOptions,
    dir: string,
  ) {
    this.id = options.setup.computeId ?? '';
    this.dir = dir;
    this.setupFiles = new Set((options.setup.files ?? []).map((file) => file.name ?? ''));
  }

  /**
   * Creates the computation's directory, confined under the prefix by its real path: a kept
   * `destPath` that goes through a symbolic link (one a job left there, say) is refused, never
   * followed. Starts nothing yet.
   */
  static async prepare(options: ComputationOptions): Promise<Computation> {
    const { setup, destPathPrefix } = options;
    const relative = setup.destPath || `computation-${setup.computeId}`;
    const lexical = confine(destPathPrefix, relative);
    for (const file of setup.files ?? []) confine(lexical, file.name ?? '');
    const dir = await confineReal(destPathPrefix, relative, { want: 'dir', makeDirs: true, dirMode: 0o700 });
    return new Computation(options, dir);
  }

  /**
   * Sorts the files offered at setup: `send` are missing here (or of another size); `have` are
   * here with the same size, given with their sha256 for the client to compare with its own.
   */
  async wantedFiles(files: dispy.IFileInfo[]): Promise<{ send: string[]; have: dispy.IFileInfo[] }> {
    const send: string[] = [];
    const have: dispy.IFileInfo[] = [];
    for (const file of files) {
      // A symbolic link (or anything but a plain file) in the way is refused here, never followed.
      const target = await confineReal(this.dir, file.name!);
      const existing = await lstat(target).catch(() => undefined);
      if (existing?.isFile() && existing.size === Number(file.size)) have.push({ name: file.name, sha256: await fileSha256(target) });
      else send.push(file.name!);
    }
    return { send, have };
  }

  /** Resolves when every file has arrived (keys: names, or `jobId/name`); rejects on a failure. */
  awaitFiles(names: string[]): Promise<void> {
    return Promise.all(names.map((name) => this.expect(name).promise)).then(() => undefined);
  }

  /** A transfer into this computation's directory ended (`jobId`: a per-job file of that job). */
  fileArrived(name: string, error?: Error, jobId = 0): void {
    const expected = this.expect(jobId ? `${jobId}/${name}` : name);
    if (error) expected.reject(error);
    else expected.resolve();
  }

  /** Starts the workers (running setup in each) or readies the program. */
  async start(): Promise<void> {
    const { setup, cpus, logger } = this.options;
    if (setup.kind === dispy.ComputationKind.PROGRAM) {
      const program = await confineReal(this.dir, setup.source ?? '');
      await chmod(program, 0o755);
      this.runner = new ProgramPool({
        program,
        dir: this.dir,
        size: cpus,
        maxOutputBytes: this.options.maxOutputBytes,
        logger,
        slots: this.options.slots,
        onDone: (outcome) => this.done(outcome),
        onStarted: this.options.onStarted,
      });
    } else {
      const definition = (d: dispy.IDefinition | null | undefined): Definition | undefined =>
        d?.name ? { name: d.name, source: d.source ?? '' } : undefined;
      this.runner = new WorkerPool({
        size: cpus,
        logger,
        slots: this.options.slots,
        onDone: (outcome) => this.done(outcome),
        onStarted: this.options.onStarted,
        onShutdownRequest: this.options.onShutdownRequest,
        onProvisional: this.options.onProvisional,
        onSendFile: this.options.onSendFile,
        init: {
          type: 'init',
          name: setup.name || 'computation',
          source: setup.source ?? '',
          computeDir: this.dir,
          nodeName: this.options.nodeName,
          nodeAddress: this.options.nodeAddress,
          definitions: (setup.definitions ?? []).map(definition).filter((d): d is Definition => d !== undefined),
          values: setup.values?.length ? setup.values : undefined,
          setup: definition(setup.setup),
          setupArgs: setup.setupArgs?.length ? setup.setupArgs : undefined,
          maxOutputBytes: this.options.maxOutputBytes,
        },
      });
    }
    await this.runner.start();
  }

  get cpus(): number {
    return this.runner?.size ?? 0;
  }

  /** CPUs the client asked for at setup (the most this computation uses). */
  get requestedCpus(): number {
    return this.options.cpus;
  }

  /** Runs a job once its per-job files (sent just before it) have arrived. */
  run(job: dispy.Job, args: EncodedArguments): void {
    const jobId = Number(job.jobId);
    const files = job.files ?? [];
    const definitions = (job.definitions ?? []).map((d) => ({ name: d.name ?? '', source: d.source ?? '' }));
    const timeoutMs = job.timeout > 0 ? job.timeout * 1000 : 0;
    if (files.length === 0) {
      this.runner!.run(jobId, args, timeoutMs, definitions);
      return;
    }
    const clash = files.find((name) => this.setupFiles.has(name));
    if (clash) {
      const now = Date.now();
      this.options.onDone({
        jobId,
        ok: false,
        stdout: '',
        stderr: '',
        startTime: now,
        endTime: now,
        cpuTime: 0,
        exception: `dispy: the job's depends file ${clash} has the name of a depends file of the cluster; rename one of them`,
      });
      return;
    }
    this.jobFiles.set(jobId, files);
    for (const name of files) this.jobFileUses.set(name, (this.jobFileUses.get(name) ?? 0) + 1);
    this.awaitFiles(files.map((name) => `${jobId}/${name}`)).then(
      () => this.runner?.run(jobId, args, timeoutMs, definitions),
      (error: Error) => {
        const now = Date.now();
        this.done({
          jobId,
          ok: false,
          exception: `dispy: a depends file of the job did not arrive: ${error.message}`,
          stdout: '',
          stderr: '',
          startTime: now,
          endTime: now,
          cpuTime: 0,
        });
      },
    );
  }

  cancel(jobId: number): boolean {
    return this.runner?.cancel(jobId) ?? false;
  }

  /**
   * Gives back jobs that have not started (see `JobRunner.reclaim`); a job still waiting for its
   * per-job files is not given back. Resolves with those dropped.
   */
  async reclaim(jobIds: readonly number[]): Promise<number[]> {
    if (!this.runner) return [];
    return this.runner.reclaim(jobIds.filter((jobId) => !this.jobFiles.has(jobId)));
  }

  runningJobs(): number[] {
    return this.runner?.runningJobs() ?? [];
  }

  /** Uses `cpus` worker processes from now on. */
  async resize(cpus: number): Promise<void> {
    await this.runner?.resize(cpus);
  }

  /**
   * Runs the cleanup function (if any), stops the workers (killing running jobs), and removes
   * the files unless the client asked to keep them.
   */
  async close(): Promise<void> {
    const { setup, logger } = this.options;
    if (setup.cleanupFunction?.name && this.runner) {
      const error = await this.runner.runCleanup({ name: setup.cleanupFunction.name, source: setup.cleanupFunction.source ?? '' });
      if (error) logger.warn(`cleanup of ${setup.name} failed: ${error}`);
    }
    await this.runner?.close();
    for (const expected of this.expected.values()) expected.reject(new Error('the computation was closed'));
    if (setup.cleanup) await rm(this.dir, { recursive: true, force: true });
  }

  private expect(name: string): Expected {
    let expected = this.expected.get(name);
    if (!expected) {
      let resolve!: () => void;
      let reject!: (error: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      promise.catch(() => undefined);
      expected = { promise, resolve, reject };
      this.expected.set(name, expected);
    }
    return expected;
  }

  /**
   * A job ended: its per-job files go once no other job uses them; then it is reported, as a
   * reply that fits in one frame (fitReply).
   */
  private done(ended: JobOutcome): void {
    const outcome = fitReply(ended);
    const files = this.jobFiles.get(outcome.jobId);
    if (!files) {
      this.options.onDone(outcome);
      return;
    }
    this.jobFiles.delete(outcome.jobId);
    const unused: string[] = [];
    for (const name of files) {
      this.expected.delete(`${outcome.jobId}/${name}`);
      const uses = (this.jobFileUses.get(name) ?? 1) - 1;
      if (uses > 0) {
        this.jobFileUses.set(name, uses);
      } else {
        this.jobFileUses.delete(name);
        unused.push(name);
      }
    }
    // Removed before the job is reported, so the client's next job never sees them.
    // allSettled: a file that cannot be removed must not lose the job's reply.
    void Promise.allSettled(unused.map((name) => rm(path.join(this.dir, name), { force: true }))).then(() => this.options.onDone(outcome));
  }
}
