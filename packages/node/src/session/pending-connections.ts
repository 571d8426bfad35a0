/** Caps on connections that have not authenticated yet. */
export interface PendingLimits {
  /** At most this many in total; one more evicts the oldest. */
  total: number;
  /** At most this many from one remote address; one more is refused. */
  perAddress: number;
}

/**
 * Connections waiting to authenticate, capped in total and per remote address (as sshd's
 * MaxStartups caps unauthenticated connections). A connection over its address's cap is
 * refused. One over the total cap evicts the oldest waiting connection instead: a legitimate
 * client authenticates within milliseconds, so idle connections held open by an attacker are
 * the ones that go, and a client can always get a slot.
 */
export class PendingConnections<T> {
  /** Waiting connections and their addresses, oldest first. */
  private readonly waiting = new Map<T, string>();
  private readonly perAddress = new Map<string, number>();

  constructor(
    private readonly limits: PendingLimits,
    /** Closes a connection evicted to make room. */
    private readonly evict: (connection: T) => void,
  ) {}

  get size(): number {
    return this.waiting.size;
  }

  /** False when `address` has as many connections waiting as it may: refuse the next. */
  hasRoomFor(address: string): boolean {
    return (this.perAddress.get(address) ?? 0) < this.limits.perAddress;
  }

  /**
   * Counts a new connection from `address` (which has room, see hasRoomFor). Returns 'evicted'
   * when it took the slot of the oldest connection, which `evict` has been asked to close.
   */
  admit(connection: T, address: string): 'admitted' | 'evicted' {
    let outcome: 'admitted' | 'evicted' = 'admitted';
    if (this.waiting.size >= this.limits.total) {
      const oldest = this.waiting.keys().next().value as T;
      this.remove(oldest);
      this.evict(oldest);
      outcome = 'evicted';
    }
    this.waiting.set(connection, address);
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    return outcome;
  }

  /**
   * `next` takes the slot of `previous`, with its address and its age (the oldest is still evicted
   * first): a TLS connection is counted from its TCP accept, as its socket, and its session takes
   * the socket's slot once the TLS handshake is done. Returns false, changing nothing, when
   * `previous` holds no slot (it closed, or was evicted).
   */
  transfer(previous: T, next: T): boolean {
    if (!this.waiting.has(previous)) return false;
    // At most `limits.total` entries, once per TLS connection: rebuilding keeps the order.
    const entries = [...this.waiting];
    this.waiting.clear();
    for (const [connection, address] of entries) this.waiting.set(connection === previous ? next : connection, address);
    return true;
  }

  /** The connection authenticated or closed: it waits no more. */
  remove(connection: T): void {
    const address = this.waiting.get(connection);
    if (address === undefined) return;
    this.waiting.delete(connection);
    const count = (this.perAddress.get(address) ?? 1) - 1;
    if (count > 0) this.perAddress.set(address, count);
    else this.perAddress.delete(address);
  }
}
