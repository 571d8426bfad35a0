// Small statistics helpers for latency samples and rates.

/**
 * The p-th percentile (0..100) of `samples` by the nearest-rank method: always one of the
 * measured values, so a p99 over 1000 samples is the 990th smallest, not an interpolation.
 */
export function percentile(samples, p) {
  if (samples.length === 0) return Number.NaN;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** Median (p50) by the same nearest-rank rule as `percentile`. */
export function median(samples) {
  return percentile(samples, 50);
}

/** Median, p99, min and max of `samples`, in their own unit. */
export function summarize(samples) {
  let min = Infinity;
  let max = -Infinity;
  for (const value of samples) {
    if (value < min) min = value;
    if (value > max) max = value;
  }
  return { count: samples.length, median: median(samples), p99: percentile(samples, 99), min, max };
}

/** Items per second from a count and elapsed milliseconds. */
export function perSecond(count, elapsedMs) {
  return elapsedMs > 0 ? (count * 1000) / elapsedMs : Number.NaN;
}

/**
 * Summarizes repeated timings of the same `count` items: the rate of the median round, and a
 * text listing every round's time (for the report's detail column).
 */
export function roundsSummary(roundsMs, count) {
  const middle = median(roundsMs);
  const list = roundsMs.map((ms) => ms.toFixed(0)).join(' / ');
  return { perSecond: perSecond(count, middle), medianMs: middle, text: `${roundsMs.length} rounds (${list} ms)` };
}
