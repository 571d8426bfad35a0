/**
 * A job submitted to a cluster. `id` is yours to set; every other field is kept up to date by
 * the cluster as the job moves through its statuses. `await job.wait()` gives its result.
 */
export class DispyJob<R = unknown> {
  /** Queued, waiting for a node. */
  static readonly Created = 5;
  /** Running on a node. */
  static readonly Running = 6;
  /** Running; an intermediate result arrived (in `result`). */
  static readonly ProvisionalResult = 7;
  /** Cancelled by `cancel`, or its node died and the cluster is not reentrant. */
  static readonly Cancelled = 8;
  /** The computation threw (see `exception`), or its worker died. */
  static readonly Terminated = 9;
  /** The computation returned; `result` holds its value. */
  static readonly Finished = 11;

  /** Any value the program sets to recognise the job. */
  id: unknown;
  /** One of the DispyJob status constants. */
  status: number = DispyJob.Created;
  /** Address of the node where it runs or ran. */
  ipAddr: string | undefined;
  /** The computation's return value (function) or exit status (program). */
  result: R | undefined;
  /** What the job wrote to stdout on the node. */
  stdout = '';
  /** What the job wrote to stderr on the node. */
  stderr = '';
  /** The stack trace text when the computation threw, or why the job ended otherwise. */
  exception: string | undefined;
  /** Epoch milliseconds. */
  submitTime: number = Date.now();
  startTime: number | undefined;
  endTime: number | undefined;

  readonly #done: Promise<R | undefined>;
  // Typed by what it resolves with (this.result), not by R, so that a DispyJob<string> is a
  // DispyJob<unknown> for methods such as cluster.cancel(job).
  #settle!: () => void;

  /** @internal Jobs are created by a cluster's submit methods. */
  constructor(id?: unknown) {
    this.id = id;
    this.#done = new Promise((resolve) => {
      this.#settle = () => resolve(this.result);
    });
  }

  /** True once the job has Finished, Terminated, or been Cancelled. */
  get isDone(): boolean {
    return this.status >= DispyJob.Cancelled;
  }

  /**
   * Resolves with `result` once the job is done (dispy's `job()`): the return value when it
   * Finished, `undefined` when it was Terminated or Cancelled (see `status` and `exception`).
   * Never rejects.
   */
  wait(): Promise<R | undefined> {
    return this.#done;
  }

  /** @internal Called by the cluster when the job reaches a final status. */
  settle(): void {
    this.#settle();
  }

  /** The status constant's name, for messages. */
  static statusName(status: number): string {
    return STATUS_NAMES[status] ?? `status ${status}`;
  }
}

const STATUS_NAMES: Record<number, string> = {
  [DispyJob.Created]: 'Created',
  [DispyJob.Running]: 'Running',
  [DispyJob.ProvisionalResult]: 'ProvisionalResult',
  [DispyJob.Cancelled]: 'Cancelled',
  [DispyJob.Terminated]: 'Terminated',
  [DispyJob.Finished]: 'Finished',
};
