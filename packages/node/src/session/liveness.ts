import type { Logger } from '@dispy/protocol/internal';

export interface LivenessOptions {
  /** A client silent this long (ms) is presumed gone. */
  zombieIntervalMs: number;
  logger: Logger;
  peer: string;
  /** Sends one pulse to the client (proof of life with the node's availability). */
  pulse(): Promise<void>;
  /** The client has been silent for the zombie interval. */
  onZombie(): void;
}

/**
 * Proof of life both ways once a computation is set up: the node pulses the client every
 * `pulseInterval` seconds, and presumes a client gone that it has not heard from (any frame
 * counts) for the zombie interval. Timers are unref'd: they only keep things tidy.
 */
export class Liveness {
  private lastHeard = Date.now();
  private pulseTimer?: NodeJS.Timeout;
  private zombieTimer?: NodeJS.Timeout;

  constructor(private readonly options: LivenessOptions) {}

  /** A frame arrived from the client. */
  heard(): void {
    this.lastHeard = Date.now();
  }

  /** How often the client should send a heartbeat, in seconds: five per zombie interval. */
  get heartbeatSeconds(): number {
    return this.options.zombieIntervalMs / 5 / 1000;
  }

  /** Starts pulses every `seconds` (0: none) and the zombie watch; later calls change nothing. */
  start(pulseSeconds: number): void {
    const { zombieIntervalMs, logger, peer } = this.options;
    if (!this.pulseTimer && pulseSeconds > 0) {
      this.pulseTimer = setInterval(() => {
        this.options.pulse().catch((error: Error) => logger.debug(`pulse to ${peer}: ${error.message}`));
      }, pulseSeconds * 1000);
      this.pulseTimer.unref();
    }
    if (!this.zombieTimer) {
      this.zombieTimer = setInterval(
        () => {
          const silentMs = Date.now() - this.lastHeard;
          if (silentMs <= zombieIntervalMs) return;
          logger.warn(`client ${peer} silent for ${(silentMs / 60_000).toFixed(2)} min (zombie interval): closing its computations`);
          this.stop();
          this.options.onZombie();
        },
        Math.max(100, zombieIntervalMs / 5),
      );
      this.zombieTimer.unref();
    }
  }

  stop(): void {
    clearInterval(this.pulseTimer);
    clearInterval(this.zombieTimer);
    this.pulseTimer = undefined;
    this.zombieTimer = undefined;
  }
}
