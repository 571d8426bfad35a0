import type { EngineJob } from '@dispy/scheduler';
import type { DispyJob } from '../job/dispy-job.js';

/** A job as the cluster tracks it: the user's DispyJob plus what scheduling needs. */
export interface ClusterJob extends EngineJob {
  readonly job: DispyJob;
  /** Encoded arguments; dropped once sent unless the cluster may need to resend them. */
  args: Buffer | undefined;
  /** The only node (IP) that may run it, for jobs submitted to a node. */
  pinnedHost?: string;
  /** Node key (host:port) while it runs. */
  nodeKey?: string;
}
