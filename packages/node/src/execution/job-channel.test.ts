import { describe, expect, it } from 'vitest';
import { frameHeader } from '@dispy/protocol/codec';
import { JobChannelReader } from './job-channel.js';
import type { JobChannelMessage } from './worker-messages.js';

/** A frame as JobChannelWriter writes it: header, JSON message, then the arguments. */
function frame(message: JobChannelMessage, args?: Uint8Array): Buffer {
  const bytes = Buffer.from(JSON.stringify(message));
  if (!args) return Buffer.concat([frameHeader(bytes.length), bytes]);
  return Buffer.concat([frameHeader(bytes.length, args.length), bytes, args]);
}

/**
 * Feeds `stream` to a reader the way the socket does: each read fills at most `readSizes[i]`
 * bytes (cycling) of the buffer the reader hands out, and never more than that buffer holds.
 */
function readAll(stream: Buffer, readSizes: number[]): Array<[JobChannelMessage, string]> {
  const out: Array<[JobChannelMessage, string]> = [];
  const reader = new JobChannelReader((message, args) => out.push([message, Buffer.from(args).toString('hex')]));
  let at = 0;
  for (let i = 0; at < stream.length; i++) {
    if (i > stream.length * 4) throw new Error('the reader stopped taking bytes');
    const target = reader.nextReadBuffer();
    const bytes = Math.min(target.length, readSizes[i % readSizes.length]!, stream.length - at);
    stream.copy(target, 0, at, at + bytes);
    at += bytes;
    reader.received(bytes);
  }
  return out;
}

const bigArgs = Buffer.alloc(200_000);
for (let i = 0; i < bigArgs.length; i++) bigArgs[i] = (i * 7) & 0xff;
const longDefinition = { name: 'helper', source: `function helper() { return '${'x'.repeat(100_000)}'; }` };
const MESSAGES: Array<[JobChannelMessage, Uint8Array?]> = [
  [{ type: 'job', jobId: 1 }, Buffer.from([0x91, 0x01])],
  [{ type: 'drop', jobId: 7 }],
  [{ type: 'job', jobId: 2, definitions: [longDefinition] }, bigArgs],
  [{ type: 'job', jobId: 3 }, Buffer.alloc(0)],
  [{ type: 'job', jobId: 4 }, Buffer.from('c0', 'hex')],
];
const STREAM = Buffer.concat(MESSAGES.map(([message, args]) => frame(message, args)));
const EXPECTED = MESSAGES.map(([message, args]) => [message, Buffer.from(args ?? []).toString('hex')]);

describe('JobChannelReader', () => {
  it('returns jobs with their arguments and drops, in order, from one read or many', () => {
    expect(readAll(STREAM, [STREAM.length])).toEqual(EXPECTED);
    expect(readAll(STREAM, [65_536])).toEqual(EXPECTED);
    expect(readAll(STREAM, [1])).toEqual(EXPECTED);
    expect(readAll(STREAM, [3, 5000, 7, 64_000, 11])).toEqual(EXPECTED);
  });

  it('reads arguments straight into the buffer handed to the job', () => {
    const args: Uint8Array[] = [];
    const reader = new JobChannelReader((_message, bytes) => args.push(bytes));
    const stream = frame({ type: 'job', jobId: 9 }, bigArgs);
    const header = stream.length - bigArgs.length;
    // The first read brings the header, the message and 10 bytes of arguments.
    stream.copy(reader.nextReadBuffer(), 0, 0, header + 10);
    reader.received(header + 10);
    const target = reader.nextReadBuffer();
    expect(target.length).toBe(bigArgs.length - 10);
    stream.copy(target, 0, header + 10);
    reader.received(target.length);
    expect(args).toHaveLength(1);
    expect(args[0]!.buffer).toBe(target.buffer);
    expect(Buffer.from(args[0]!).equals(bigArgs)).toBe(true);
  });
});
