import { CappedText } from './output-limit.js';

/**
 * Captures what a job writes to stdout and stderr (console.* included) by wrapping the streams'
 * write methods inside the worker, so output is complete and in order when the job's result is
 * sent, whatever the job does afterwards. Each stream keeps at most `maxBytes` of a job's
 * output (see CappedText); the rest is counted and named by a marker at the end.
 */
export class OutputCapture {
  private stdout = new CappedText(0);
  private stderr = new CappedText(0);
  private active = false;

  install(): void {
    wrap(process.stdout, () => (this.active ? this.stdout : undefined));
    wrap(process.stderr, () => (this.active ? this.stderr : undefined));
  }

  /** Starts capturing a job's output, keeping at most `maxBytes` of each stream (0: all). */
  start(maxBytes: number): void {
    this.stdout = new CappedText(maxBytes);
    this.stderr = new CappedText(maxBytes);
    this.active = true;
  }

  /** Stops capturing and returns what was written since start(). */
  stop(): { stdout: string; stderr: string } {
    this.active = false;
    return { stdout: this.stdout.text('stdout'), stderr: this.stderr.text('stderr') };
  }
}

function wrap(stream: NodeJS.WriteStream, sink: () => CappedText | undefined): void {
  const original = stream.write.bind(stream);
  stream.write = (chunk: unknown, encoding?: unknown, callback?: unknown): boolean => {
    const capture = sink();
    if (!capture) return original(chunk as never, encoding as never, callback as never);
    capture.push(typeof chunk === 'string' ? chunk : (chunk as Uint8Array));
    const done = typeof encoding === 'function' ? encoding : callback;
    if (typeof done === 'function') process.nextTick(done);
    return true;
  };
}
