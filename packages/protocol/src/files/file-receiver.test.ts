import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { dispy } from '../schema/generated.js';
import { FileReceiver, type ReceivedFile } from './file-receiver.js';
import { confine } from './confine.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function receiver(maxFileSize = 0) {
  const root = mkdtempSync(path.join(os.tmpdir(), 'dispy-receiver-'));
  dirs.push(root);
  const results = new Map<number, ReceivedFile | Error>();
  let settle: () => void = () => {};
  const files = new FileReceiver({
    rootFor: () => root,
    maxFileSize,
    pause: () => {},
    resume: () => {},
    onDone: (id, result) => {
      results.set(id, result);
      settle();
    },
  });
  const done = (id: number) =>
    new Promise<ReceivedFile | Error>((resolve) => {
      const check = () => results.has(id) && resolve(results.get(id)!);
      settle = check;
      check();
    });
  return { root, files, done };
}

/** The message of the error a transfer ended with (failing the test when it succeeded). */
function failure(result: ReceivedFile | Error): string {
  expect(result).toBeInstanceOf(Error);
  return (result as Error).message;
}

/**
 * The frames of a transfer of `data` in `count` chunks, each with its bytes (the frame's
 * attachment) in two pieces, as they arrive from socket reads.
 */
function chunks(
  transferId: number,
  name: string,
  data: Buffer,
  count: number,
  sha = createHash('sha256').update(data).digest(),
): Array<[dispy.FileChunk, Buffer[]]> {
  const size = Math.ceil(data.length / count);
  const out: Array<[dispy.FileChunk, Buffer[]]> = [];
  for (let offset = 0, i = 0; i < count; i++, offset += size) {
    const last = i === count - 1;
    const bytes = data.subarray(offset, offset + size);
    const half = Math.floor(bytes.length / 2);
    out.push([
      dispy.FileChunk.create({ transferId, path: name, offset, last, size: i === 0 ? data.length : 0, sha256: last ? sha : undefined }),
      [bytes.subarray(0, half), bytes.subarray(half)],
    ]);
  }
  return out;
}

describe('FileReceiver', () => {
  it('writes a file that arrives in chunks and checks its sha256 before naming it', async () => {
    const { root, files, done } = receiver();
    const data = Buffer.from('x'.repeat(100_000));
    for (const [chunk, bytes] of chunks(1, 'sub/dir/data.txt', data, 7)) files.receive(chunk, bytes);
    const result = await done(1);
    expect(result).toMatchObject({ name: 'sub/dir/data.txt', size: 100_000 });
    expect(readFileSync(path.join(root, 'sub/dir/data.txt')).equals(data)).toBe(true);
  });

  it('refuses a damaged file and leaves nothing behind', async () => {
    const { root, files, done } = receiver();
    const data = Buffer.from('payload');
    for (const [chunk, bytes] of chunks(2, 'damaged.bin', data, 2, Buffer.alloc(32))) files.receive(chunk, bytes);
    expect(failure(await done(2))).toMatch(/arrived damaged: its sha256 does not match/);
    expect(readdirSync(root)).toEqual([]);
  });

  it('refuses names outside its directory', async () => {
    for (const [id, name, why] of [
      [3, '../escape.txt', /must not contain "\.\."/],
      [4, '/etc/passwd', /must be relative/],
      [5, 'a/../../b', /must not contain/],
    ] as const) {
      const { root, files, done } = receiver();
      for (const [chunk, bytes] of chunks(id, name, Buffer.from('evil'), 1)) files.receive(chunk, bytes);
      expect(failure(await done(id))).toMatch(why);
      expect(existsSync(path.join(root, '..', 'escape.txt'))).toBe(false);
    }
  });

  it('refuses a file over the size limit, announced or not', async () => {
    const { files, done } = receiver(10);
    for (const [chunk, bytes] of chunks(6, 'big.bin', Buffer.alloc(11), 1)) files.receive(chunk, bytes);
    expect(failure(await done(6))).toMatch(/exceeds the size limit of 10 bytes/);
    // A sender that lies about the size is stopped when the bytes pass the limit.
    const lying = chunks(7, 'liar.bin', Buffer.alloc(40), 4).map(([chunk, bytes], i): [dispy.FileChunk, Buffer[]] => [
      i === 0 ? Object.assign(chunk, { size: 5 }) : chunk,
      bytes,
    ]);
    for (const [chunk, bytes] of lying) files.receive(chunk, bytes);
    expect(failure(await done(7))).toMatch(/exceeds the size limit of 10 bytes/);
  });
});

describe('FileReceiver when the disk fails it', () => {
  it('fails the transfer with the reason, crashes nothing, and resumes the paused socket', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'dispy-receiver-'));
    dirs.push(root);
    writeFileSync(path.join(root, 'blocker'), 'a file where a directory is needed');
    let paused = 0;
    let resumed = 0;
    let resolveResumed!: () => void;
    const resumedOnce = new Promise<void>((resolve) => (resolveResumed = resolve));
    let resolveOutcome!: (result: ReceivedFile | Error) => void;
    const outcome = new Promise<ReceivedFile | Error>((resolve) => (resolveOutcome = resolve));
    const files = new FileReceiver({
      rootFor: () => root,
      maxFileSize: 0,
      pause: () => paused++,
      resume: () => {
        resumed++;
        resolveResumed();
      },
      onDone: (_id, result) => resolveOutcome(result),
    });
    // 12 MiB in 3 chunks: past the 4 MiB high-water mark, so the socket is paused. The last
    // chunk comes later, as from a later socket read: the failed writes must not be left
    // unhandled meanwhile (that would end the process).
    const [first, second, last] = chunks(8, 'blocker/data.bin', Buffer.alloc(12 * 1024 * 1024, 1), 3);
    files.receive(...first!);
    files.receive(...second!);
    await resumedOnce;
    expect(resumed).toBe(1);
    files.receive(...last!);
    const result = await outcome;
    expect(failure(result)).toMatch(/ENOTDIR|EEXIST|not a directory|file already exists/);
    expect(paused).toBe(1);
    expect(resumed).toBe(1);
    expect(readdirSync(root)).toEqual(['blocker']);
  });
});

describe('confine', () => {
  it('resolves relative names under the root and refuses escapes', () => {
    expect(confine('/srv/dispy', 'a/b.txt')).toBe('/srv/dispy/a/b.txt');
    expect(() => confine('/srv/dispy', '')).toThrow(/a file name is required/);
    expect(() => confine('/srv/dispy', '.')).toThrow(/escapes its directory/);
    expect(() => confine('/srv/dispy', 'C:\\windows')).toThrow(/must be relative/);
  });
});
