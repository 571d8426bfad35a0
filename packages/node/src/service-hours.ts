/** What the node does at a service time. */
export type ServiceEvent = 'start' | 'stop' | 'end';

export interface ServiceHoursOptions {
  start?: string;
  stop?: string;
  end?: string;
  /** Called at each event, and once at the beginning with the state the clock says now. */
  onEvent: (event: ServiceEvent) => void;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** Milliseconds since local midnight of `HH:MM[:SS]`. */
function timeOfDayMs(text: string): number {
  const [h, m, s] = text.split(':').map(Number);
  return ((h! * 60 + m!) * 60 + (s ?? 0)) * 1000;
}

/** The last time `text` (a time of day) came before or at `now`. */
function lastOccurrence(text: string, now: Date): number {
  const midnight = new Date(now);
  midnight.setHours(0, 0, 0, 0);
  const today = midnight.getTime() + timeOfDayMs(text);
  return today <= now.getTime() ? today : today - DAY_MS;
}

/**
 * A node's daily service window (`--service-start`, `--service-stop`, `--service-end`): at
 * `stop` it takes no new jobs, at `end` it also terminates running ones, at `start` it serves
 * again. Each event is re-armed for the next day. Timers are unref'd.
 */
export class ServiceHours {
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(private readonly options: ServiceHoursOptions) {}

  /**
   * Applies the state of now and arms the next events. With a start time, the state is that of
   * the most recent event (a node started at night, between stop and start, waits for start);
   * without one, the node serves until its first stop or end.
   */
  start(now = new Date()): void {
    const events = (['start', 'stop', 'end'] as const).filter((event) => this.options[event]);
    if (events.length === 0) return;
    if (this.options.start) {
      const latest = events.reduce((a, b) => (lastOccurrence(this.options[a]!, now) >= lastOccurrence(this.options[b]!, now) ? a : b));
      this.options.onEvent(latest);
    }
    for (const event of events) this.arm(event, now);
  }

  stopTimers(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.length = 0;
  }

  private arm(event: ServiceEvent, now: Date): void {
    const next = lastOccurrence(this.options[event]!, now) + DAY_MS;
    const timer = setTimeout(() => {
      this.options.onEvent(event);
      this.arm(event, new Date());
    }, next - now.getTime());
    timer.unref();
    this.timers.push(timer);
  }
}
