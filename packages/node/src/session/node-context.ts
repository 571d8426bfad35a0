import type { Logger } from '@dispy/protocol/internal';
import type { NodeComputations } from './node-computations.js';

/** What a client's session needs of the node serving it. */
export interface NodeContext<Session = unknown> {
  readonly name: string;
  readonly secret: string;
  /** CPUs the node offers now (0: it takes no new jobs). */
  readonly cpus: number;
  readonly destPathPrefix: string;
  readonly logger: Logger;
  /** Largest file transferred either way, in bytes (0: no limit). */
  readonly maxFileSize: number;
  /** Cap on each of a job's stdout, stderr and exception text, in bytes (0: none; default 1 MiB). */
  readonly maxOutputBytes?: number;
  /** A client away this long (ms) is presumed gone: its computations are closed, their saved replies deleted. */
  readonly zombieIntervalMs: number;
  /** The node sends a Pulse after this long (ms) without sending; it presumes a link dead after 4 times as long without hearing. */
  readonly heartbeatIntervalMs: number;
  /** Every computation the node keeps, whichever connection set it up. */
  readonly computations: NodeComputations;
  /** The client proved the secret: its connection no longer counts as unauthenticated. */
  authenticated(session: Session): void;
  /** A computation of this session asked the node to shut down. */
  requestShutdown(session: Session): void;
  /**
   * Makes `session` the node's client (taking over from `from`, the session of an earlier
   * connection of the same client, when that one holds the node); false when another client holds it.
   */
  claim(session: Session, from?: unknown): boolean;
  /** `session` may have nothing left here: the node is free once it has no computation and no job of its runs. */
  release(session: unknown): void;
}
