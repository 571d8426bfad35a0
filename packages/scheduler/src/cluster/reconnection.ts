/** The first wait before reconnecting to a node whose link was lost, in ms. */
export const RECONNECT_FIRST_DELAY_MS = 250;
/** The longest wait between two attempts, in ms. */
export const RECONNECT_MAX_DELAY_MS = 5_000;

/** The wait before attempt `attempt` (0, 1, …): 0.25 s, doubling up to 5 s. */
export function reconnectDelay(attempt: number): number {
  return Math.min(RECONNECT_MAX_DELAY_MS, RECONNECT_FIRST_DELAY_MS * 2 ** Math.min(attempt, 16));
}

export interface ReconnectionOptions {
  /** Epoch ms after which no attempt starts, and one in progress is abandoned. */
  deadline: number;
  /** One attempt: connects and takes the node's computations back; rejects when that fails. */
  attempt(): Promise<void>;
  /** An attempt failed (it is logged at debug level; the next one follows). */
  failed(error: Error, attempt: number): void;
  /** The deadline passed: `abandon` what is in progress; the link is given up. */
  gaveUp(lastError: Error | undefined): void;
  /** Ends an attempt in progress (the deadline passed, or the link was closed). */
  abandon(): void;
}

/**
 * Reconnects one lost link: attempts after 0.25 s, 0.5 s, 1 s, … up to 5 s apart, until one
 * succeeds or the deadline (the node's zombie interval after the loss) passes. Its timers keep
 * the process alive only while it is active (work is pending), like the connections.
 */
export class Reconnection {
  private timer?: NodeJS.Timeout;
  private deadlineTimer?: NodeJS.Timeout;
  private attempts = 0;
  private lastError?: Error;
  private stopped = false;
  private inProgress = false;
  private active = false;
  /** Settles when the reconnection has ended (reconnected, given up, or stopped). */
  readonly ended: Promise<'back' | 'gone' | 'stopped'>;
  private end!: (how: 'back' | 'gone' | 'stopped') => void;

  constructor(private readonly options: ReconnectionOptions) {
    this.ended = new Promise((resolve) => (this.end = resolve));
    this.deadlineTimer = setTimeout(() => this.giveUp(), Math.max(0, options.deadline - Date.now()));
    this.schedule();
  }

  /** Keeps the process alive while the link is being reconnected (`true`), or lets it exit. */
  setActive(active: boolean): void {
    this.active = active;
    for (const timer of [this.timer, this.deadlineTimer]) {
      if (active) timer?.ref();
      else timer?.unref();
    }
  }

  /** Stops without a verdict (the link was closed or presumed dead meanwhile). */
  stop(): void {
    if (this.stopped) return;
    this.finish('stopped');
    if (this.inProgress) this.options.abandon();
  }

  private schedule(): void {
    this.timer = setTimeout(() => void this.run(), reconnectDelay(this.attempts));
    if (!this.active) this.timer.unref();
    if (!this.active) this.deadlineTimer?.unref();
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    const attempt = ++this.attempts;
    this.inProgress = true;
    try {
      await this.options.attempt();
    } catch (error) {
      this.inProgress = false;
      if (this.stopped) return;
      this.lastError = error as Error;
      this.options.failed(error as Error, attempt);
      this.schedule();
      return;
    }
    this.inProgress = false;
    if (!this.stopped) this.finish('back');
  }

  private giveUp(): void {
    if (this.stopped) return;
    this.finish('gone');
    if (this.inProgress) this.options.abandon();
    this.options.gaveUp(this.lastError);
  }

  private finish(how: 'back' | 'gone' | 'stopped'): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.deadlineTimer);
    this.end(how);
  }
}
