// The throughput workload shared by dispy and its baselines, so they always measure the same.

/** Jobs (tasks) submitted at once, in one synchronous loop, per throughput round. */
export const THROUGHPUT_JOBS = 10_000;

/**
 * Throughput is measured this many rounds in a row and the median round reported: a round takes
 * 0.3–2 s and varies by up to ±20% on a small VM, as much as the targets' margins, and the first
 * round after a single warm-up job is still noticeably slower (JIT). Every round's time is shown.
 */
export const THROUGHPUT_ROUNDS = 3;
