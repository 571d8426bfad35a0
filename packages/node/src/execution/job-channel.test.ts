import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ErrorCode, FrameError } from '@dispy/protocol';
import { MAX_JOB_FRAME_BYTES, frameHeader } from '@dispy/protocol/codec';
import { JOB_CHANNEL_MAX_FRAME_BYTES, JobChannelReader } from './job-channel.js';
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

describe('JobChannelReader limit', () => {
  /** What `received` throws. */
  function refusal(action: () => void): FrameError {
    let thrown: unknown;
    try {
      action();
    } catch (error) {
      thrown = error;
    }
    expect(FrameError.isInstance(thrown)).toBe(true);
    return thrown as FrameError;
  }

  /** Delivers `bytes` to `reader` as one read. */
  function read(reader: JobChannelReader, bytes: Buffer): void {
    bytes.copy(reader.nextReadBuffer());
    reader.received(bytes.length);
  }

  it("allows a job's arguments as large as a Job frame from the client may bring", () => {
    expect(JOB_CHANNEL_MAX_FRAME_BYTES).toBeGreaterThanOrEqual(MAX_JOB_FRAME_BYTES);
  });

  it('refuses a frame over the limit from its header, before allocating anything for it', () => {
    const reader = new JobChannelReader(() => undefined);
    const scratch = reader.nextReadBuffer().length;
    const error = refusal(() => read(reader, frameHeader(100, JOB_CHANNEL_MAX_FRAME_BYTES)));
    expect(error.code).toBe(ErrorCode.FRAME_TOO_LARGE);
    expect(error.message).toBe(
      `frame of ${JOB_CHANNEL_MAX_FRAME_BYTES + 100} bytes exceeds the limit of ${JOB_CHANNEL_MAX_FRAME_BYTES} bytes`,
    );
    expect(reader.nextReadBuffer().length).toBeLessThanOrEqual(scratch);
  });

  it('refuses an oversized message, which would otherwise grow its buffer, and one split over reads', () => {
    const messages: JobChannelMessage[] = [];
    const reader = new JobChannelReader((message) => messages.push(message), 1000);
    read(reader, frame({ type: 'drop', jobId: 1 }));
    expect(messages).toEqual([{ type: 'drop', jobId: 1 }]);
    const header = frameHeader(1001);
    read(reader, header.subarray(0, 3));
    expect(refusal(() => read(reader, header.subarray(3))).message).toBe('frame of 1001 bytes exceeds the limit of 1000 bytes');
  });

  it("closes a worker's job channel with the error, which the worker's socket reports", async () => {
    // A process reading its fd 4 as a worker does, and reporting how its channel ended.
    const channel = new URL('./job-channel.ts', import.meta.url).href;
    const script = `
      import { readJobChannel } from ${JSON.stringify(channel)};
      readJobChannel(() => process.stdout.write('message\\n'))
        .on('error', (error) => process.stdout.write(JSON.stringify({ code: error.code, message: error.message })))
        .on('close', () => process.exit(3));
    `;
    const root = fileURLToPath(new URL('../../../..', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit', 'ignore', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, 'exit');
    const fd4 = child.stdio[4] as Writable;
    fd4.on('error', () => undefined);
    fd4.write(Buffer.concat([frame({ type: 'drop', jobId: 1 }), frameHeader(2, JOB_CHANNEL_MAX_FRAME_BYTES)]));
    try {
      const [code] = await exited;
      expect(code).toBe(3);
    } finally {
      child.kill();
    }
    const [first, report] = output.split('\n');
    expect(first).toBe('message');
    expect(JSON.parse(report!)).toEqual({
      code: ErrorCode.FRAME_TOO_LARGE,
      message: `frame of ${JOB_CHANNEL_MAX_FRAME_BYTES + 2} bytes exceeds the limit of ${JOB_CHANNEL_MAX_FRAME_BYTES} bytes`,
    });
  });
});
