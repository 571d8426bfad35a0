import type { Logger } from '@dispy/protocol/internal';

/** Heard nothing for this many heartbeat intervals: the link is presumed dead. */
export const LINK_TIMEOUT_HEARTBEATS = 4;

/** Checks of the link per heartbeat interval (a Pulse goes out at most 1/CHECKS late). */
const CHECKS_PER_HEARTBEAT = 4;

export interface LivenessOptions {
  /** Milliseconds of silence after which the node sends a Pulse (and 4 times that: the link is dead). */
  heartbeatIntervalMs: number;
  logger: Logger;
  peer: string;
  /** The connection's byte counts, which say whether anything went either way. */
  socket: { readonly bytesRead: number; readonly bytesWritten: number };
  /** Sends a cheap Pulse (the heartbeat). */
  heartbeat(): void;
  /** Sends one pulse with the node's availability (the client's `pulseInterval`). */
  pulse(): Promise<void>;
  /** Heard nothing for 4 heartbeat intervals: the link is dead. */
  onLinkDead(): void;
}

/**
 * Proof of life both ways once the client has authenticated: the node sends a Pulse whenever
 * it has sent nothing for the heartbeat interval, and presumes the link dead when it has heard
 * nothing (not a byte) for 4 heartbeat intervals. A lost link is not a lost client: the session
 * detaches its computations, which the client may take back. Apart from that, once a computation
 * asks for it (`pulseInterval`), the node pulses its availability every so often. Timers are
 * unref'd: they only keep things tidy.
 */
export class Liveness {
  private lastHeard = Date.now();
  private lastSent = Date.now();
  private bytesRead = 0;
  private bytesWritten = 0;
  private heartbeatTimer?: NodeJS.Timeout;
  private pulseTimer?: NodeJS.Timeout;

  constructor(private readonly options: LivenessOptions) {}

  /** A frame arrived from the client. */
  heard(): void {
    this.lastHeard = Date.now();
  }

  /** When the client was last heard (epoch ms). */
  get lastHeardAt(): number {
    this.check();
    return this.lastHeard;
  }

  /** Starts the heartbeat and the watch on the link (once authenticated); later calls change nothing. */
  startHeartbeat(): void {
    if (this.heartbeatTimer) return;
    const { heartbeatIntervalMs, logger, peer } = this.options;
    this.lastHeard = this.lastSent = Date.now();
    this.heartbeatTimer = setInterval(
      () => {
        this.check();
        const silentMs = Date.now() - this.lastHeard;
        if (silentMs >= LINK_TIMEOUT_HEARTBEATS * heartbeatIntervalMs) {
          logger.warn(`client ${peer}: heard nothing for ${(silentMs / 1000).toFixed(1)} s; the link is presumed dead`);
          this.stop();
          this.options.onLinkDead();
          return;
        }
        if (Date.now() - this.lastSent >= heartbeatIntervalMs) {
          this.options.heartbeat();
          this.lastSent = Date.now();
        }
      },
      Math.max(10, heartbeatIntervalMs / CHECKS_PER_HEARTBEAT),
    );
    this.heartbeatTimer.unref();
  }

  /** Starts pulses with the node's availability every `seconds` (0: none); later calls change nothing. */
  startPulses(pulseSeconds: number): void {
    const { logger, peer } = this.options;
    if (this.pulseTimer || pulseSeconds <= 0) return;
    this.pulseTimer = setInterval(() => {
      this.options.pulse().catch((error: Error) => logger.debug(`pulse to ${peer}: ${error.message}`));
    }, pulseSeconds * 1000);
    this.pulseTimer.unref();
  }

  stop(): void {
    clearInterval(this.heartbeatTimer);
    clearInterval(this.pulseTimer);
    this.heartbeatTimer = undefined;
    this.pulseTimer = undefined;
  }

  /** Bytes that moved since the last check count as heard or sent (a large frame arriving slowly is not silence). */
  private check(): void {
    const { bytesRead, bytesWritten } = this.options.socket;
    if (bytesRead !== this.bytesRead) {
      this.bytesRead = bytesRead;
      this.lastHeard = Date.now();
    }
    if (bytesWritten !== this.bytesWritten) {
      this.bytesWritten = bytesWritten;
      this.lastSent = Date.now();
    }
  }
}
