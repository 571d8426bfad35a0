/** Heartbeat used when a node does not say (an older node sends 0): 10 s, so a dead link is noticed within 40 s. */
export const DEFAULT_HEARTBEAT_SECONDS = 10;
/** A link is presumed dead after this many heartbeat intervals without a byte from the peer. */
export const SILENT_HEARTBEATS = 4;

export interface LinkLivenessOptions {
  /** Seconds between heartbeats (AuthResult.heartbeat_interval; 0 or less: `DEFAULT_HEARTBEAT_SECONDS`). */
  heartbeatSeconds: number;
  /** Sends one heartbeat (a Pulse); calls `sent()` itself as any frame does. */
  pulse(): void;
  /** The peer has been silent for `SILENT_HEARTBEATS` intervals: the link is presumed dead. */
  onSilent(silentSeconds: number): void;
}

/**
 * Keeps one authenticated link alive and notices when it is not: a heartbeat goes out whenever
 * nothing was sent for one interval (so an idle link costs one small frame per interval and a busy
 * one nothing), and a peer silent for four intervals is reported once. The two timers are
 * re-armed from the last send and the last receipt when they fire, never per frame, and are
 * unref'd: they only keep things tidy.
 */
export class LinkLiveness {
  readonly heartbeatMs: number;
  private lastSent = Date.now();
  private lastHeard = Date.now();
  private sendTimer?: NodeJS.Timeout;
  private silenceTimer?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly options: LinkLivenessOptions) {
    const seconds = options.heartbeatSeconds > 0 ? options.heartbeatSeconds : DEFAULT_HEARTBEAT_SECONDS;
    this.heartbeatMs = seconds * 1000;
    this.armSend(this.heartbeatMs);
    this.armSilence(SILENT_HEARTBEATS * this.heartbeatMs);
  }

  /** Something went to the peer. */
  sent(): void {
    this.lastSent = Date.now();
  }

  /** Something came from the peer. */
  heard(): void {
    this.lastHeard = Date.now();
  }

  /** Stops both timers (the link is closed). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.sendTimer);
    clearTimeout(this.silenceTimer);
  }

  private armSend(ms: number): void {
    this.sendTimer = setTimeout(() => {
      if (this.stopped) return;
      const idle = Date.now() - this.lastSent;
      if (idle >= this.heartbeatMs) {
        this.options.pulse();
        this.lastSent = Date.now();
        this.armSend(this.heartbeatMs);
      } else {
        this.armSend(this.heartbeatMs - idle);
      }
    }, ms);
    this.sendTimer.unref();
  }

  private armSilence(ms: number): void {
    this.silenceTimer = setTimeout(() => {
      if (this.stopped) return;
      const silent = Date.now() - this.lastHeard;
      const limit = SILENT_HEARTBEATS * this.heartbeatMs;
      if (silent >= limit) {
        this.stop();
        this.options.onSilent(silent / 1000);
      } else {
        this.armSilence(limit - silent);
      }
    }, ms);
    this.silenceTimer.unref();
  }
}
