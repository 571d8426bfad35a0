import type { Logger } from './logger.js';

/** Milliseconds between two summaries at most. */
export const SUMMARY_INTERVAL_MS = 60_000;

/**
 * Counts dropped datagrams by reason and logs them as one line at most once a minute, so that a
 * flood of replayed or foreign datagrams cannot flood the log. The first drop after a quiet minute
 * is logged at once; the ones that follow within the minute are summed into the next line:
 * `discovery datagrams dropped in the last minute: 1,234 replayed, 5 stale`.
 */
export class DropSummary {
  private readonly counts = new Map<string, number>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly logger: Logger,
    private readonly what = 'discovery datagrams',
    private readonly intervalMs = SUMMARY_INTERVAL_MS,
  ) {}

  /** One datagram dropped, for `reason` (`replayed`, `stale`, `signed with another secret`). */
  count(reason: string): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    if (!this.timer) this.flush();
  }

  /** Stops the timer; what was counted since the last line is not logged. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.counts.clear();
  }

  private flush(): void {
    this.timer = undefined;
    if (this.counts.size === 0) return;
    const parts = [...this.counts].map(([reason, n]) => `${n.toLocaleString('en-US')} ${reason}`);
    this.logger.warn(`${this.what} dropped in the last minute: ${parts.join(', ')}`);
    this.counts.clear();
    this.timer = setTimeout(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }
}
