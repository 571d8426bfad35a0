import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { dispy } from '../schema/schema.js';
import { FileReceiver, type FileReceiverOptions, type ReceivedFile } from './file-receiver.js';
import { confine, confineReal, maskMode } from './confine.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function receiver(maxFileSize = 0, more: Partial<FileReceiverOptions> = {}) {
  const root = mkdtempSync(path.join(os.tmpdir(), 'dispy-receiver-'));
  dirs.push(root);
  const results = new Map<number, ReceivedFile | Error>();
  let settle: () => void = () => {};
  const files = new FileReceiver({
    ...more,
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

describe('FileReceiver confines by real path', () => {
  /** A directory outside every receiver's root, to check that nothing lands there. */
  function outside(): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-outside-'));
    dirs.push(dir);
    return dir;
  }

  it('refuses a path through a symbolic link at any level, and a symbolic link as the target', async () => {
    const { root, files, done } = receiver();
    const away = outside();
    symlinkSync(away, path.join(root, 'link'));
    mkdirSync(path.join(root, 'a/b'), { recursive: true });
    symlinkSync(away, path.join(root, 'a/b/deep'));
    symlinkSync(path.join(away, 'target.txt'), path.join(root, 'file-link'));
    let id = 20;
    for (const name of ['link/x.txt', 'a/b/deep/c/x.txt', 'file-link']) {
      for (const [chunk, bytes] of chunks(++id, name, Buffer.from('evil'), 2)) files.receive(chunk, bytes);
      expect(failure(await done(id))).toMatch(/symbolic link; refused/);
    }
    expect(readdirSync(away)).toEqual([]);
  });

  it('masks the mode a peer gives to 0644 or 0755', async () => {
    const { root, files, done } = receiver();
    for (const [id, mode, want] of [
      [30, 0o6777, 0o755],
      [31, 0o666, 0o644],
      [32, 0o1700, 0o755],
    ] as const) {
      for (const [chunk, bytes] of chunks(id, `m${id}`, Buffer.from('x'), 1)) files.receive(Object.assign(chunk, { mode }), bytes);
      expect(await done(id)).toMatchObject({ name: `m${id}` });
      expect(statSync(path.join(root, `m${id}`)).mode & 0o7777).toBe(want);
    }
  });

  it('limits the bytes of one job until it ends, and asks accept() first', async () => {
    const refused: string[] = [];
    const { root, files, done } = receiver(0, {
      maxJobSize: 10,
      accept: (chunk) => {
        if (Number(chunk.jobId) === 9) {
          refused.push(chunk.path);
          throw new Error('job 9 does not run here');
        }
      },
    });
    const send = (id: number, name: string, size: number, jobId: number) => {
      for (const [chunk, bytes] of chunks(id, name, Buffer.alloc(size, 1), 2)) files.receive(Object.assign(chunk, { jobId }), bytes);
    };
    send(40, 'one', 6, 1);
    expect(await done(40)).toMatchObject({ size: 6 });
    send(41, 'two', 6, 1);
    expect(failure(await done(41))).toMatch(/exceeds the limit of 10 bytes for the files of job 1 \(6 taken\)/);
    send(42, 'three', 4, 1);
    expect(await done(42)).toMatchObject({ size: 4 });
    files.jobEnded('', 1);
    send(43, 'four', 10, 1);
    expect(await done(43)).toMatchObject({ size: 10 });
    send(44, 'five', 1, 9);
    expect(failure(await done(44))).toMatch(/job 9 does not run here/);
    expect(refused).toEqual(['five']);
    expect(readdirSync(root).sort()).toEqual(['four', 'one', 'three']);
  });

  it('replaces an existing file only when mayReplace says so', async () => {
    const { root, files, done } = receiver(0, { mayReplace: (target) => target.endsWith('ours') });
    writeFileSync(path.join(root, 'theirs'), 'precious');
    writeFileSync(path.join(root, 'ours'), 'old');
    for (const [chunk, bytes] of chunks(50, 'theirs', Buffer.from('evil'), 1)) files.receive(chunk, bytes);
    expect(failure(await done(50))).toMatch(/exists already and was not sent by this cluster/);
    for (const [chunk, bytes] of chunks(51, 'ours', Buffer.from('new'), 1)) files.receive(chunk, bytes);
    expect(await done(51)).toMatchObject({ name: 'ours' });
    for (const [chunk, bytes] of chunks(52, 'fresh', Buffer.from('new'), 1)) files.receive(chunk, bytes);
    expect(await done(52)).toMatchObject({ name: 'fresh' });
    expect(readFileSync(path.join(root, 'theirs'), 'utf8')).toBe('precious');
    expect(readFileSync(path.join(root, 'ours'), 'utf8')).toBe('new');
    expect(readdirSync(root).sort()).toEqual(['fresh', 'ours', 'theirs']);
  });

  it('leaves nothing when a transfer is cut midway', async () => {
    const { root, files } = receiver();
    const [first] = chunks(60, 'cut/part.bin', Buffer.alloc(1000, 2), 4);
    files.receive(...first!);
    await files.abort();
    const cut = path.join(root, 'cut');
    expect(existsSync(cut) ? readdirSync(cut) : []).toEqual([]);
  });
});

describe('confineReal and maskMode', () => {
  it('makes directories one at a time, refuses what is not a directory on the way', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'dispy-confine-'));
    dirs.push(root);
    const made = await confineReal(root, 'x/y', { want: 'dir', makeDirs: true });
    expect(statSync(made).isDirectory()).toBe(true);
    writeFileSync(path.join(root, 'f'), '');
    await expect(confineReal(root, 'f/g')).rejects.toThrow(/which is not a directory/);
    await expect(confineReal(root, 'x')).rejects.toThrow(/is not a regular file/);
    expect(await confineReal(root, 'missing/a/b')).toBe(path.join(root, 'missing/a/b'));
    await expect(confineReal(root, '../x')).rejects.toThrow(/must not contain/);
  });

  it('masks modes', () => {
    expect([0, 0o777, 0o4755, 0o2644, 0o600, 0o100].map(maskMode)).toEqual([0o644, 0o755, 0o755, 0o644, 0o644, 0o755]);
  });
});
