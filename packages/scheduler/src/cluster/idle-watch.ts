/**
 * Waits for a computation's last running job on a node to end (closeNode without terminating):
 * the scheduler calls `check(nodeKey)` whenever a job there ends or the node goes, so a wait
 * ends on that event, never by polling.
 */
export class IdleWatch {
  private readonly waiters = new Set<{ nodeKey: string; computeId: string; resolve: () => void }>();

  /** `runningOn(nodeKey)`: the computations of the jobs running there now (none once the node is gone). */
  constructor(private readonly runningOn: (nodeKey: string) => Array<{ computeId: string }>) {}

  /** Resolves when no job of the computation runs on the node (at once if none does). */
  whenIdle(nodeKey: string, computeId: string): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.add({ nodeKey, computeId, resolve });
      this.check(nodeKey);
    });
  }

  /** A job on the node ended, or the node went: ends the waits that are over. */
  check(nodeKey: string): void {
    if (this.waiters.size === 0) return;
    const running = this.runningOn(nodeKey);
    for (const waiter of this.waiters) {
      if (waiter.nodeKey !== nodeKey || running.some((job) => job.computeId === waiter.computeId)) continue;
      this.waiters.delete(waiter);
      waiter.resolve();
    }
  }

  /** Ends every wait (the scheduler closes). */
  close(): void {
    for (const waiter of this.waiters) waiter.resolve();
    this.waiters.clear();
  }
}
