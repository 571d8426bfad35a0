import os from 'node:os';
import path from 'node:path';
import { DEFAULT_SCHEDULER_PORT, OptionError } from '@dispy/protocol';
import { RemoteScheduler } from '@dispy/scheduler';
import { JobCluster } from './job-cluster.js';
import type { JobClusterOptions } from './options.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFunction = (...args: any[]) => any;

/** Options of `SharedJobCluster`: those of `JobCluster`, and where dispyscheduler is. */
export interface SharedJobClusterOptions<R = unknown> extends JobClusterOptions<R> {
  /** Host (address or name) of dispyscheduler; default this host. */
  schedulerNode?: string;
  /** dispyscheduler's port for clients; default 51349. */
  schedulerPort?: number;
  /**
   * Asks for the nodes alone: the computation waits until no other runs there, and holds new ones
   * back until it closes. Default false.
   */
  exclusive?: boolean;
}

/**
 * A cluster whose jobs run on nodes shared with other programs, through dispyscheduler (which
 * must be running at `schedulerNode`, with the cluster secret as `secret`). It is a JobCluster in
 * every other way: same options, methods, jobs and callbacks, so a program written for JobCluster
 * works after changing only the constructor. Differences (as in dispy): the scheduler chooses the
 * nodes among its own (`nodes` and `allocateNode` narrow them; a NodeAllocate's depends and
 * setupArgs reach the nodes it chooses, its own `allocate` method is not run), `setNodeCpus`
 * changes nothing on shared nodes unless dispyscheduler runs with `--cooperative` (or the cluster
 * is `exclusive`): it resolves the CPUs the cluster uses there, or -1; `pulseInterval` is the
 * scheduler's. `sendFile`, `deallocateNode`, `closeNode` and files sent by jobs go through the
 * scheduler.
 * Its TLS options (`keyfile`, `certfile`, `cafile`, `certFingerprint`) are toward dispyscheduler,
 * which serves TLS with `--cluster-certfile`: they verify the scheduler, and `certfile` is the
 * certificate a scheduler with `--require-client-cert` asks for.
 *
 * @throws OptionError for a wrong option (naming it), as JobCluster.
 */
export class SharedJobCluster<F extends AnyFunction = AnyFunction> extends JobCluster<F> {
  /** Where dispyscheduler is. */
  readonly schedulerNode: string;
  readonly schedulerPort: number;
  readonly exclusive: boolean;

  constructor(computation: F | string, options: SharedJobClusterOptions<Awaited<ReturnType<F>>> = {}) {
    const { schedulerNode, schedulerPort, exclusive, ...rest } = options;
    if (schedulerNode !== undefined && (typeof schedulerNode !== 'string' || schedulerNode.length === 0)) {
      throw new OptionError(`SharedJobCluster: option "schedulerNode" must be a host name or an IP address, got ${String(schedulerNode)}`);
    }
    if (schedulerPort !== undefined && !(Number.isInteger(schedulerPort) && schedulerPort >= 1 && schedulerPort <= 65535)) {
      throw new OptionError(`SharedJobCluster: option "schedulerPort" must be an integer 1..65535, got ${String(schedulerPort)}`);
    }
    if (exclusive !== undefined && typeof exclusive !== 'boolean') {
      throw new OptionError(`SharedJobCluster: option "exclusive" must be true or false, got ${String(exclusive)}`);
    }
    const host = schedulerNode ?? os.hostname();
    const port = schedulerPort ?? DEFAULT_SCHEDULER_PORT;
    // The client binds no port of its own (it connects to the scheduler); `port` is accepted for dispy's sake.
    // The recover file names the scheduler as where the jobs are: recoverJobs asks it, with the cluster secret.
    super(
      computation,
      { ...rest, exclusive, port: rest.port ?? 0 },
      {
        kind: 'SharedJobCluster',
        recoverVia: { host, port, name: 'dispyscheduler' },
        // TLS to dispyscheduler (served with --cluster-certfile) from keyfile, certfile, cafile and certFingerprint, as a JobCluster's to its nodes.
        scheduler: ({ options: resolved, logger, tls }) =>
          new RemoteScheduler({
            host,
            port,
            secret: resolved.secret,
            tls,
            localAddress: [resolved.ipAddr ?? []].flat()[0],
            clientName: os.hostname(),
            logger,
            // Files sent by jobs come back through the scheduler and land here as from a node.
            jobFiles: {
              fileDir: path.resolve(resolved.fileDir ?? process.cwd()),
              maxFileSize: resolved.maxFileSize,
              maxJobFilesSize: resolved.maxJobFilesSize,
            },
          }),
      },
    );
    this.schedulerNode = host;
    this.schedulerPort = port;
    this.exclusive = exclusive ?? false;
  }
}
