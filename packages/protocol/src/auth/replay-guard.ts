import { DATAGRAM_WINDOW_MS } from './datagram.js';
import { NONCE_BYTES } from './hmac.js';

/** Nonces a guard remembers at most: beyond, authentic datagrams are dropped until old ones expire. */
export const MAX_NONCES_KEPT = 65_536;

/** What a guard says of an authentic datagram. */
export type DatagramVerdict = 'fresh' | 'stale' | 'replayed' | 'malformed' | 'overflow';

export interface ReplayGuardOptions {
  windowMs?: number;
  capacity?: number;
  /** The clock (tests). */
  now?: () => number;
}

/**
 * Drops discovery datagrams that are stale (their `sentAt` more than the window off our clock,
 * either way) or replayed (a nonce seen within the window). Call it for authentic datagrams only,
 * so that nobody without the secret can fill its memory. A nonce is kept for twice the window
 * from when it arrived, the longest its datagram could pass as fresh, so arrival order is expiry
 * order and forgetting costs nothing per datagram. When `capacity` nonces are kept, further
 * datagrams are dropped (`overflow`) rather than letting an old nonce be replayed.
 */
export class ReplayGuard {
  /** Nonce (hex) to the time it may be forgotten, in arrival order. */
  private readonly seen = new Map<string, number>();
  private readonly windowMs: number;
  private readonly capacity: number;
  private readonly now: () => number;

  constructor(options: ReplayGuardOptions = {}) {
    this.windowMs = options.windowMs ?? DATAGRAM_WINDOW_MS;
    this.capacity = options.capacity ?? MAX_NONCES_KEPT;
    this.now = options.now ?? Date.now;
  }

  check(body: { sentAt?: number | null; nonce?: Uint8Array | null }): DatagramVerdict {
    const now = this.now();
    if (!body.nonce || body.nonce.length !== NONCE_BYTES || !body.sentAt) return 'malformed';
    if (Math.abs(now - body.sentAt) > this.windowMs) return 'stale';
    this.forget(now);
    const key = Buffer.from(body.nonce.buffer, body.nonce.byteOffset, body.nonce.byteLength).toString('hex');
    if (this.seen.has(key)) return 'replayed';
    if (this.seen.size >= this.capacity) return 'overflow';
    this.seen.set(key, now + 2 * this.windowMs);
    return 'fresh';
  }

  /** Nonces kept now (tests). */
  get size(): number {
    return this.seen.size;
  }

  private forget(now: number): void {
    for (const [key, until] of this.seen) {
      if (until > now) break;
      this.seen.delete(key);
    }
  }
}
