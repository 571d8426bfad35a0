/** Whatever runs a computation's jobs, as the node's CPU slots see it. */
export interface CpuTenant {
  /**
   * A CPU slot is free for this tenant: start work on it (a job, or a worker's batch of jobs)
   * and return true, or return false when there is nothing to start now. A tenant that took a
   * slot gives it back with `CpuSlots.release` when that work ends.
   */
  grant(): boolean;
}

/**
 * The node's CPUs, shared among its computations: no more than `capacity` slots are held at
 * once, whoever holds them. A tenant with work waiting says so (`want`); free slots go to the
 * tenants that want one in round-robin order, one slot per turn, so that a computation with
 * 100,000 queued jobs does not starve one with 10: of the tenants in line, one holding the
 * fewest slots, and of those the one that got a slot longest ago, goes first. One that has
 * nothing to start when its turn comes leaves the line until it wants again.
 */
export class CpuSlots {
  private used = 0;
  /** Tenants that want a slot, in the order they get one (each at most once). */
  private readonly line: CpuTenant[] = [];
  private readonly held = new Map<CpuTenant, number>();
  /** When each tenant last got a slot (a count of grants): the longest without goes first. */
  private readonly lastGrant = new WeakMap<CpuTenant, number>();
  private grants = 0;
  private granting = false;

  /** @param capacity slots at most (Infinity: no limit, for a pool that is not shared) */
  constructor(private capacity: number) {}

  /** Slots held now, over every tenant. */
  get inUse(): number {
    return this.used;
  }

  /** Slots held by `tenant` now. */
  heldBy(tenant: CpuTenant): number {
    return this.held.get(tenant) ?? 0;
  }

  /** How many tenants wait for a slot. */
  get waiting(): number {
    return this.line.length;
  }

  /** Changes the number of slots (the node's CPUs changed); held slots above it are given back as their work ends. */
  setCapacity(capacity: number): void {
    this.capacity = capacity;
    this.pump();
  }

  /** `tenant` has work to start: it gets slots (through `grant`) in its turns. */
  want(tenant: CpuTenant): void {
    if (!this.line.includes(tenant)) this.line.push(tenant);
    this.pump();
  }

  /** `tenant` gives a slot back (the work started on it ended). */
  release(tenant: CpuTenant): void {
    const count = this.held.get(tenant) ?? 0;
    if (count === 0) return;
    if (count === 1) this.held.delete(tenant);
    else this.held.set(tenant, count - 1);
    this.used--;
    this.pump();
  }

  /** `tenant` is gone (its computation closed): it leaves the line and its slots are freed. */
  remove(tenant: CpuTenant): void {
    const index = this.line.indexOf(tenant);
    if (index >= 0) this.line.splice(index, 1);
    this.used -= this.held.get(tenant) ?? 0;
    this.held.delete(tenant);
    this.pump();
  }

  private pump(): void {
    // A grant may lead to another call here (a tenant wanting again): the loop below serves it.
    if (this.granting) return;
    this.granting = true;
    try {
      // Each turn takes a tenant off the line: bounded by the line's length plus the free slots.
      while (this.used < this.capacity && this.line.length > 0) {
        const tenant = this.next();
        if (!tenant.grant()) continue;
        this.used++;
        this.lastGrant.set(tenant, ++this.grants);
        this.held.set(tenant, (this.held.get(tenant) ?? 0) + 1);
        if (!this.line.includes(tenant)) this.line.push(tenant);
      }
    } finally {
      this.granting = false;
    }
  }

  /** Takes the next tenant off the line: of those holding the fewest slots, the one that got a slot longest ago. */
  private next(): CpuTenant {
    const rank = (tenant: CpuTenant): [number, number] => [this.heldBy(tenant), this.lastGrant.get(tenant) ?? 0];
    let best = 0;
    for (let i = 1; i < this.line.length; i++) {
      const [held, last] = rank(this.line[i]!);
      const [bestHeld, bestLast] = rank(this.line[best]!);
      if (held < bestHeld || (held === bestHeld && last < bestLast)) best = i;
    }
    return this.line.splice(best, 1)[0]!;
  }
}
