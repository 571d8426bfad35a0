import type { Logger } from '@dispy/protocol/internal';
import type { NodeAllocator } from './types.js';

/** First wait before resolving a name again, then doubled up to MAX_RETRY_MS. */
const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 60_000;

/** What of an allocator names its nodes. */
export type NamedNodes = Pick<NodeAllocator, 'host' | 'port' | 'resolved'>;

export interface HostNamesOptions {
  /** Resolves a host name to its addresses (rejects when it does not resolve). */
  resolve: (name: string) => Promise<string[]>;
  /** A name resolved (at last): look for nodes at these addresses. */
  resolved: (allocator: NamedNodes, addresses: string[]) => void;
  /** Whether a computation still has this allocator (one closed meanwhile stops its names being resolved). */
  wanted: (allocator: NamedNodes) => boolean;
  logger: Logger;
}

/**
 * The host names of a computation's `nodes`: a name that does not resolve affects only itself.
 * It is logged once (warn), then resolved again with backoff (1 s doubling to 60 s, each attempt
 * at debug) until it resolves, its computation closes or the scheduler closes; the other nodes are
 * used meanwhile.
 */
export class HostNames {
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly options: HostNamesOptions) {}

  /** Resolves an allocator's host name now; when that fails, warns and tries again later (never rejects). */
  async lookFor(allocator: NamedNodes): Promise<void> {
    try {
      this.options.resolved(allocator, await this.options.resolve(allocator.host));
    } catch (error) {
      if (this.closed) return;
      this.options.logger.warn(
        `node ${allocator.host} does not resolve (${(error as Error).message}); the other nodes are used, and the name is resolved again later`,
      );
      this.retry(allocator, FIRST_RETRY_MS, 1);
    }
  }

  /** Stops resolving names again. */
  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private retry(allocator: NamedNodes, delay: number, attempt: number): void {
    if (this.closed) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.options.wanted(allocator)) return;
      this.options.resolve(allocator.host).then(
        (addresses) => {
          if (this.closed) return;
          this.options.logger.info(`node ${allocator.host} resolves now, to ${addresses.join(', ')}`);
          this.options.resolved(allocator, addresses);
        },
        (error: Error) => {
          this.options.logger.debug(`node ${allocator.host}: resolving again (attempt ${attempt + 1}) failed: ${error.message}`);
          this.retry(allocator, Math.min(delay * 2, MAX_RETRY_MS), attempt + 1);
        },
      );
    }, delay);
    // Waiting jobs keep the process alive (discovery); a name to resolve again alone does not.
    timer.unref();
    this.timers.add(timer);
  }
}
