/**
 * Captures what a job writes to stdout and stderr (console.* included) by wrapping the streams'
 * write methods inside the worker, so output is complete and in order when the job's result is
 * sent, whatever the job does afterwards.
 */
export class OutputCapture {
  private stdout: string[] = [];
  private stderr: string[] = [];
  private active = false;

  install(): void {
    wrap(process.stdout, this.stdout, () => this.active);
    wrap(process.stderr, this.stderr, () => this.active);
  }

  start(): void {
    this.stdout.length = 0;
    this.stderr.length = 0;
    this.active = true;
  }

  /** Stops capturing and returns what was written since start(). */
  stop(): { stdout: string; stderr: string } {
    this.active = false;
    return { stdout: this.stdout.join(''), stderr: this.stderr.join('') };
  }
}

function wrap(stream: NodeJS.WriteStream, sink: string[], capturing: () => boolean): void {
  const original = stream.write.bind(stream);
  stream.write = (chunk: unknown, encoding?: unknown, callback?: unknown): boolean => {
    if (!capturing()) return original(chunk as never, encoding as never, callback as never);
    sink.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    const done = typeof encoding === 'function' ? encoding : callback;
    if (typeof done === 'function') process.nextTick(done);
    return true;
  };
}
