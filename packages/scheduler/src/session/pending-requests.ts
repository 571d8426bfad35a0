import { DispyError, ErrorCode, type Frame, type dispy } from '@dispy/protocol';

/**
 * What a request does with each frame that answers it: `'done'` settles it with that frame,
 * `'more'` keeps it pending (setup's FileWant comes before its SetupReply; the timer restarts).
 */
export type AnswerHandler = (frame: Frame) => 'done' | 'more';

interface Pending {
  readonly what: string;
  readonly timeoutMs: number;
  readonly onAnswer: AnswerHandler;
  readonly resolve: (frame: Frame) => void;
  readonly reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * The requests of one connection waiting for their answers, by request id. Ids are fresh per
 * connection (1, 2, …; never 0, which marks a frame that answers nothing). Every request ends:
 * with its answer, with a DispyError (`ErrorCode.NO_ANSWER`) when no answer comes in time or the
 * connection goes, or with the DispyError of an Error frame that names it.
 */
export class PendingRequests {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closedBecause?: DispyError;

  /** `peer` names the other side in messages (`node 10.0.0.2:51348`). */
  constructor(private readonly peer: string) {}

  /** Requests still waiting. */
  get size(): number {
    return this.pending.size;
  }

  /**
   * Opens a request: returns its id (to put on the request's frame) and its answer. `what` names
   * the request in errors (`setCpus`). The answer rejects at once when the connection is closed.
   */
  open(what: string, timeoutMs: number, onAnswer: AnswerHandler = () => 'done'): { id: number; answer: Promise<Frame> } {
    const id = this.nextId++;
    if (this.nextId > 0xffff_ffff) this.nextId = 1; // uint32 on the wire
    if (this.closedBecause) return { id, answer: Promise.reject(this.closedBecause) };
    const answer = new Promise<Frame>((resolve, reject) => {
      const entry: Pending = { what, timeoutMs, onAnswer, resolve, reject, timer: this.timer(id, what, timeoutMs) };
      this.pending.set(id, entry);
    });
    return { id, answer };
  }

  /**
   * Hands a frame to the request it names (`frame.requestId`); false when it names none that is
   * waiting (a late answer to a request that timed out, or no request at all). An Error frame
   * rejects its request with a DispyError carrying the frame's code.
   */
  answer(frame: Frame): boolean {
    return this.answerTo(frame.requestId, frame);
  }

  /** Hands a frame to request `id` (a transfer's FileDone names its transfer id, not a request id). */
  answerTo(id: number, frame: Frame): boolean {
    const entry = id === 0 ? undefined : this.pending.get(id);
    if (!entry) return false;
    if (frame.kind === 'error') {
      this.settle(id, entry);
      const { code, message } = frame.error as dispy.Error;
      const known = (Object.values(ErrorCode) as string[]).includes(code) ? (code as ErrorCode) : ErrorCode.PROTOCOL;
      entry.reject(new DispyError(known, `${this.peer} refused ${entry.what}: ${message}`));
      return true;
    }
    let outcome: 'done' | 'more';
    try {
      outcome = entry.onAnswer(frame);
    } catch (error) {
      this.settle(id, entry);
      entry.reject(error as Error);
      return true;
    }
    if (outcome === 'done') {
      this.settle(id, entry);
      entry.resolve(frame);
    } else {
      clearTimeout(entry.timer);
      entry.timer = this.timer(id, entry.what, entry.timeoutMs);
    }
    return true;
  }

  /** Ends a waiting request with `error` (its own side gave up, e.g. its files could not be sent). */
  fail(id: number, error: Error): void {
    const entry = this.pending.get(id);
    if (!entry) return;
    this.settle(id, entry);
    entry.reject(error);
  }

  /** The connection is gone: every waiting request, and every later one, rejects naming the peer. */
  close(why?: Error): void {
    this.closedBecause ??= new DispyError(ErrorCode.NO_ANSWER, `${this.peer} went away before answering${why ? ` (${why.message})` : ''}`, {
      cause: why,
    });
    for (const [id, entry] of this.pending) {
      this.settle(id, entry);
      entry.reject(
        new DispyError(ErrorCode.NO_ANSWER, `${this.peer} went away before answering ${entry.what}${why ? `: ${why.message}` : ''}`, {
          cause: why,
        }),
      );
    }
  }

  private settle(id: number, entry: Pending): void {
    clearTimeout(entry.timer);
    this.pending.delete(id);
  }

  private timer(id: number, what: string, timeoutMs: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      const entry = this.pending.get(id);
      if (!entry) return;
      this.pending.delete(id);
      entry.reject(new DispyError(ErrorCode.NO_ANSWER, `${this.peer} did not answer ${what} in ${timeoutMs / 1000} s`));
    }, timeoutMs);
    timer.unref();
    return timer;
  }
}
