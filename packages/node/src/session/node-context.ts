import type { Logger } from '@dispy/protocol/internal';

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
  /** A client silent this long (ms) is presumed gone: its computations are closed. */
  readonly zombieIntervalMs: number;
  /** The client proved the secret: its connection no longer counts as unauthenticated. */
  authenticated(session: Session): void;
  /** A computation of this session asked the node to shut down. */
  requestShutdown(session: Session): void;
  /** Makes `session` the node's client; false when another client holds the node. */
  claim(session: Session): boolean;
  release(session: Session): void;
}
