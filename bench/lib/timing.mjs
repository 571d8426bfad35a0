// Timing helpers shared by the sections.
import { performance } from 'node:perf_hooks';

/** Milliseconds since an arbitrary origin, sub-microsecond resolution (monotonic). */
export const now = () => performance.now();

/**
 * Rejects with `message` if `promise` has not settled after `ms`: every wait in the suite is
 * bounded so a hang in the system under test shows up as an error, never as a stuck run.
 */
export function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} (no answer after ${ms} ms)`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
