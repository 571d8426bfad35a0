import type { Logger } from '@dispy/protocol/internal';
import type { NodeComputations } from './node-computations.js';
import type { CpuSlots } from '../execution/cpu-slots.js';

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
  /** The node's CPUs, shared by the jobs of every computation (round-robin among those with jobs waiting). */
  readonly slots: CpuSlots;
  /** The client proved the secret: its connection no longer counts as unauthenticated. */
  authenticated(session: Session): void;
  /** A computation of this session asked the node to shut down. */
  requestShutdown(session: Session): void;
  /**
   * `session` asks to set up computation `computeId`: undefined when the node takes it (it is
   * counted from now on, see `NodeComputations.reserve`), else why not now (another computation
   * runs here alone, or `--max-clients` are served): the client is told to try again later.
   */
  admit(session: Session, computeId: string, exclusive: boolean): string | undefined;
  /**
   * `session` takes over what `from` (the session of an earlier connection of the same client)
   * held here (Reattach); false when the node cannot serve it any more.
   */
  claim(session: Session, from?: unknown): boolean;
  /** `session` may have nothing left here (a computation closed, its jobs ended): the node counts it out once it has no computation and no job. */
  release(session: unknown): void;
  /** A computation was set up: each client's share of the CPUs is told again. */
  changed(): void;
}
