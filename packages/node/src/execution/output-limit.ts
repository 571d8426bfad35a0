import { StringDecoder } from 'node:string_decoder';

/** Default cap on each of a job's stdout, stderr and exception text: 1 MiB (`--max-output-size`). */
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;

/** A size for people: `812 bytes`, `68.4 MB`, `1.2 GB` (decimal units). */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} bytes`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** What replaces the end of a text cut to its limit: `…[dispy: 68.4 MB of stdout truncated]`. */
export function truncationMarker(droppedBytes: number, what: string): string {
  return `…[dispy: ${formatBytes(droppedBytes)} of ${what} truncated]`;
}

/**
 * Text gathered in pieces (a job's stdout, say), of which at most `maxBytes` bytes of UTF-8 are
 * kept (0: all): the first ones, cut on a character boundary; the rest is only counted, so a
 * job that prints gigabytes holds a megabyte.
 */
export class CappedText {
  private readonly parts: string[] = [];
  private kept = 0;
  private dropped = 0;

  constructor(private readonly maxBytes: number) {}

  push(chunk: string | Uint8Array): void {
    const bytes = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (this.dropped > 0) {
      this.dropped += bytes;
      return;
    }
    if (this.maxBytes <= 0 || this.kept + bytes <= this.maxBytes) {
      this.parts.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      this.kept += bytes;
      return;
    }
    // StringDecoder returns whole characters only: a character cut at the limit is dropped whole.
    const room = this.maxBytes - this.kept;
    // The first `room` characters hold at least `room` bytes: only they are encoded, never the whole chunk.
    const buffer =
      typeof chunk === 'string' ? Buffer.from(chunk.slice(0, room)) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    const head = new StringDecoder('utf8').write(buffer.subarray(0, room));
    const headBytes = Buffer.byteLength(head);
    this.parts.push(head);
    this.kept += headBytes;
    this.dropped += bytes - headBytes;
  }

  /** The text kept, with a marker naming what was cut (`what`: stdout, stderr, ...) when something was. */
  text(what: string): string {
    const text = this.parts.join('');
    return this.dropped > 0 ? text + truncationMarker(this.dropped, what) : text;
  }
}

/** `text` cut to `maxBytes` bytes of UTF-8 (0: no cap), with a marker when it was cut. */
export function capText(text: string, maxBytes: number, what: string): string {
  if (maxBytes <= 0 || text.length <= maxBytes / 4 || Buffer.byteLength(text) <= maxBytes) return text;
  const capped = new CappedText(maxBytes);
  capped.push(text);
  return capped.text(what);
}
