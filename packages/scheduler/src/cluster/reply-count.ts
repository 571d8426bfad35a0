import { DispyError, ErrorCode } from '@dispy/protocol';

/**
 * The final replies of one computation that come after its Reattach went out on a new
 * connection. The node's ReattachReply says how many replies it kept (`saved`) and which jobs it
 * still holds (`held`); the kept replies follow it. `until` resolves once that many replies of
 * jobs it does not hold have come (a held job that ends meanwhile replies too, and is not
 * counted), so that every job the node had then is accounted for.
 */
export class ReplyCount {
  private readonly seen = new Set<number>();
  private waiting?: { held: ReadonlySet<number>; saved: number; resolve: () => void; reject: (error: Error) => void };
  private counted = 0;
  private timer?: NodeJS.Timeout;

  /** `peer` names the node in errors. */
  constructor(
    private readonly peer: string,
    private readonly timeoutMs: number,
  ) {}

  /** A final reply of job `jobId` of the computation arrived. */
  add(jobId: number): void {
    if (this.seen.has(jobId)) return;
    this.seen.add(jobId);
    if (!this.waiting) return;
    if (!this.waiting.held.has(jobId)) this.counted++;
    this.check();
    // Many replies read back from disk may take a while: the time limit is for a silence.
    this.timer?.refresh();
  }

  /**
   * Resolves once `saved` replies of jobs not in `held` have come (at once if they have); rejects
   * with `ErrorCode.NO_ANSWER` when none comes for `timeoutMs`, or with the error of `fail`.
   */
  until(held: ReadonlySet<number>, saved: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting = { held, saved, resolve, reject };
      for (const jobId of this.seen) if (!held.has(jobId)) this.counted++;
      this.timer = setTimeout(() => {
        const waiting = this.waiting;
        this.stop();
        waiting?.reject(
          new DispyError(
            ErrorCode.NO_ANSWER,
            `${this.peer} said it kept ${saved} replies but resent ${this.counted} of them, then nothing for ${this.timeoutMs / 1000} s`,
          ),
        );
      }, this.timeoutMs);
      this.timer.unref();
      this.check();
    });
  }

  /** Ends a wait with `error` (the link closed). */
  fail(error: Error): void {
    const waiting = this.waiting;
    this.stop();
    waiting?.reject(error);
  }

  /** Stops counting and waiting (the wait, if any, stays unsettled: its owner has moved on). */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.waiting = undefined;
  }

  private check(): void {
    if (this.waiting && this.counted >= this.waiting.saved) {
      const { resolve } = this.waiting;
      this.stop();
      resolve();
    }
  }
}
