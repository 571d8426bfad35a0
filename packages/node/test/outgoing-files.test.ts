import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FrameInit, FrameSink } from '@dispy/protocol';
import { OutgoingFiles } from '../src/session/outgoing-files.js';

/** A connection whose buffer is full until `release()`: a transfer stops at its second chunk. */
function stalledSink() {
  const frames: FrameInit[] = [];
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let resolveStalled!: () => void;
  const stalled = new Promise<void>((resolve) => (resolveStalled = resolve));
  const sink: FrameSink = {
    send: (frame) => {
      frames.push(frame);
      return false;
    },
    bufferedBytes: Infinity,
    drain: () => {
      resolveStalled();
      return released;
    },
  };
  return { sink, frames, stalled, release };
}

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-outgoing-'));
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('OutgoingFiles', () => {
  it('fails a transfer still being sent when the client goes away, leaving no rejection unhandled', async () => {
    const file = path.join(dir, 'big.bin');
    writeFileSync(file, Buffer.alloc(9 * 1024 * 1024));
    const { sink, frames, stalled, release } = stalledSink();
    const outgoing = new OutgoingFiles(sink, 0);
    const sending = outgoing.send({ id: 'c1', dir }, 1, file);
    await stalled;
    expect(frames).toHaveLength(1);
    // The client goes away while the sender waits for room: the transfer's `arrived` is
    // rejected before anything awaits it (the defect killed the node here).
    outgoing.abort(new Error('the client went away'));
    await new Promise((resolve) => setImmediate(resolve));
    release();
    await expect(sending).rejects.toThrow('the client went away');
  });

  it('resolves when the client says the file arrived, and rejects with its reason when refused', async () => {
    const file = path.join(dir, 'small.txt');
    writeFileSync(file, 'hello');
    const frames: FrameInit[] = [];
    let bothSent!: () => void;
    const sent = new Promise<void>((resolve) => (bothSent = resolve));
    const sink: FrameSink = {
      send: (frame) => {
        if (frames.push(frame) === 2) bothSent();
        return true;
      },
      drain: async () => {},
    };
    const outgoing = new OutgoingFiles(sink, 0);
    const first = outgoing.send({ id: 'c1', dir }, 1, file);
    const second = outgoing.send({ id: 'c1', dir }, 2, file);
    await sent;
    // The two reads race: find each job's transfer by its job id, not by the order of its frame.
    const transferOf = (jobId: number) => Number(frames.find((frame) => Number(frame.fileChunk!.jobId) === jobId)!.fileChunk!.transferId);
    expect(transferOf(1)).not.toBe(transferOf(2));
    outgoing.done({ transferId: transferOf(2), ok: false, error: 'disk full' } as never);
    outgoing.done({ transferId: transferOf(1), ok: true } as never);
    await expect(first).resolves.toBeUndefined();
    await expect(second).rejects.toThrow('disk full');
  });

  it('refuses a directory, a file outside the computation and one over the size limit, and anything after the client left', async () => {
    mkdirSync(path.join(dir, 'results'));
    writeFileSync(path.join(dir, 'large.bin'), Buffer.alloc(2000));
    const outgoing = new OutgoingFiles({ send: () => true, drain: async () => {} }, 1000);
    await expect(outgoing.send({ id: 'c1', dir }, 1, path.join(dir, 'results'))).rejects.toThrow('results is not a regular file');
    await expect(outgoing.send({ id: 'c1', dir }, 1, '/etc/passwd')).rejects.toThrow();
    await expect(outgoing.send({ id: 'c1', dir }, 1, path.join(dir, 'large.bin'))).rejects.toThrow(
      "large.bin is 2000 bytes, over the node's limit of 1000 bytes (--max-file-size)",
    );
    outgoing.abort(new Error('the client went away'));
    await expect(outgoing.send({ id: 'c1', dir }, 1, path.join(dir, 'large.bin'))).rejects.toThrow('the client went away');
  });
});
