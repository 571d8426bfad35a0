/**
 * Entries that are forgotten `ttlMs` after they were last set, at most `capacity` of them (setting
 * one more forgets the oldest). Kept in the order they were last set, so expiry costs nothing per
 * entry that is still alive. The relay's memory of clients, of the pings it passed on and of the
 * nodes that announced themselves.
 */
export class ExpiringTable<V> {
  private readonly entries = new Map<string, { value: V; until: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly capacity: number,
    private readonly now: () => number = Date.now,
  ) {}

  set(key: string, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, { value, until: this.now() + this.ttlMs });
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
  }

  get(key: string): V | undefined {
    this.expire();
    return this.entries.get(key)?.value;
  }

  /** The live entries, oldest first, with the ms each has left. */
  *live(): IterableIterator<[string, V, number]> {
    this.expire();
    const now = this.now();
    for (const [key, { value, until }] of this.entries) yield [key, value, until - now];
  }

  get size(): number {
    this.expire();
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }

  private expire(): void {
    const now = this.now();
    for (const [key, { until }] of this.entries) {
      if (until > now) break;
      this.entries.delete(key);
    }
  }
}
