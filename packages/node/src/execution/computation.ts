import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { dispy, type Logger } from '@dispy/protocol';
import { WorkerPool, type JobOutcome } from './worker-pool.js';

export interface ComputationOptions {
  setup: dispy.ISetup;
  cpus: number;
  destPathPrefix: string;
  nodeName: string;
  nodeAddress: string;
  logger: Logger;
  onDone: (outcome: JobOutcome) => void;
  onShutdownRequest?: () => void;
}

/**
 * A computation installed on this node for a client: its directory and its worker pool.
 */
export class Computation {
  readonly id: string;
  readonly dir: string;
  private pool?: WorkerPool;

  private constructor(private readonly options: ComputationOptions, dir: string) {
    this.id = options.setup.computeId ?? '';
    this.dir = dir;
  }

  /** Creates the computation's directory and starts its workers; throws with the reason. */
  static async install(options: ComputationOptions): Promise<Computation> {
    const { setup, destPathPrefix } = options;
    const dir = confine(destPathPrefix, setup.destPath || `computation-${setup.computeId}`);
    if (setup.kind !== dispy.ComputationKind.FUNCTION) {
      throw new Error('program computations are not supported by this node yet');
    }
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const computation = new Computation(options, dir);
    const pool = new WorkerPool({
      size: options.cpus,
      logger: options.logger,
      onDone: options.onDone,
      onShutdownRequest: options.onShutdownRequest,
      init: {
        type: 'init',
        name: setup.name || 'computation',
        source: setup.source ?? '',
        computeDir: dir,
        nodeName: options.nodeName,
        nodeAddress: options.nodeAddress,
      },
    });
    try {
      await pool.start();
    } catch (error) {
      if (setup.cleanup) await rm(dir, { recursive: true, force: true });
      throw error;
    }
    computation.pool = pool;
    return computation;
  }

  get cpus(): number {
    return this.pool?.size ?? 0;
  }

  run(jobId: number, args: Uint8Array, timeoutMs = 0): void {
    this.pool!.run(jobId, args, timeoutMs);
  }

  /** CPUs the client asked for at setup (the most this computation uses). */
  get requestedCpus(): number {
    return this.options.cpus;
  }

  /** Uses `cpus` worker processes from now on. */
  async resize(cpus: number): Promise<void> {
    await this.pool?.resize(cpus);
  }

  cancel(jobId: number): boolean {
    return this.pool?.cancel(jobId) ?? false;
  }

  runningJobs(): number[] {
    return this.pool?.runningJobs() ?? [];
  }

  /** Stops the workers (killing running jobs) and removes the files unless told to keep them. */
  async close(): Promise<void> {
    await this.pool?.close();
    if (this.options.setup.cleanup) await rm(this.dir, { recursive: true, force: true });
  }
}

/** Resolves a client-given relative path under `root`, refusing anything that escapes it. */
export function confine(root: string, relative: string): string {
  if (path.isAbsolute(relative)) throw new Error(`path ${JSON.stringify(relative)} must be relative`);
  const base = path.resolve(root);
  const resolved = path.resolve(base, relative);
  if (resolved !== base && !resolved.startsWith(base + path.sep)) {
    throw new Error(`path ${JSON.stringify(relative)} escapes the node's directory`);
  }
  return resolved;
}
