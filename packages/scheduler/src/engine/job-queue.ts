/** What the queue needs of a job: a priority (higher first) and its arrival order. */
export interface Queueable {
  readonly uid: number;
  readonly priority: number;
}

interface Entry<J> {
  job: J;
  seq: number;
}

/**
 * Jobs waiting for a CPU: a binary heap ordered by priority (higher first), then FIFO.
 * Push, pop and remove are O(log n); removal is lazy (a removed job is skipped when it surfaces).
 */
export class JobQueue<J extends Queueable> {
  private readonly heap: Entry<J>[] = [];
  private readonly removed = new Set<number>();
  private seq = 0;

  get size(): number {
    return this.heap.length - this.removed.size;
  }

  push(job: J): void {
    this.heap.push({ job, seq: this.seq++ });
    this.siftUp(this.heap.length - 1);
  }

  /** The job that pop() would return, without removing it. */
  peek(): J | undefined {
    this.dropRemovedTop();
    return this.heap[0]?.job;
  }

  pop(): J | undefined {
    this.dropRemovedTop();
    return this.popTop();
  }

  /** Forgets a job; the caller must know it is queued here (the engine tracks that). */
  remove(uid: number): void {
    this.removed.add(uid);
  }

  /** Every job still queued, in no particular order. */
  *jobs(): IterableIterator<J> {
    for (const entry of this.heap) if (!this.removed.has(entry.job.uid)) yield entry.job;
  }

  private dropRemovedTop(): void {
    while (this.heap.length > 0 && this.removed.has(this.heap[0]!.job.uid)) {
      this.removed.delete(this.heap[0]!.job.uid);
      this.popTop();
    }
  }

  private popTop(): J | undefined {
    const top = this.heap[0];
    const last = this.heap.pop();
    if (top === undefined || last === undefined) return undefined;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.siftDown(0);
    }
    return top.job;
  }

  private before(a: Entry<J>, b: Entry<J>): boolean {
    return a.job.priority !== b.job.priority ? a.job.priority > b.job.priority : a.seq < b.seq;
  }

  private siftUp(index: number): void {
    const heap = this.heap;
    const entry = heap[index]!;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.before(entry, heap[parent]!)) break;
      heap[index] = heap[parent]!;
      index = parent;
    }
    heap[index] = entry;
  }

  private siftDown(index: number): void {
    const heap = this.heap;
    const entry = heap[index]!;
    const length = heap.length;
    for (;;) {
      let child = 2 * index + 1;
      if (child >= length) break;
      if (child + 1 < length && this.before(heap[child + 1]!, heap[child]!)) child++;
      if (!this.before(heap[child]!, entry)) break;
      heap[index] = heap[child]!;
      index = child;
    }
    heap[index] = entry;
  }
}
