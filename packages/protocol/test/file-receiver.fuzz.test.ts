/*
 * Property-based fuzzing of FileReceiver: random sequences of chunks (offsets out of order, sizes
 * that lie, paths with `..` or absolute, a missing first chunk, a last chunk twice, hashes right
 * and wrong) never write outside the receiver's root, never throw out of `receive`, end every
 * transfer they begin exactly once, and leave no partial file behind (see testing/fuzz.ts for
 * the seed and the number of runs).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync, lstatSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { dispy } from '../src/schema/schema.js';
import { FileReceiver, type ReceivedFile } from '../src/files/file-receiver.js';
import { fc, fuzzRuns, hostileString } from '../../../testing/fuzz.js';

const base = mkdtempSync(path.join(os.tmpdir(), 'dispy-fuzz-receiver-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** Every path under `dir`, relative to it, with `/` after directories. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (at: string, prefix: string): void => {
    for (const name of readdirSync(at).sort()) {
      const full = path.join(at, name);
      const isDir = lstatSync(full).isDirectory();
      out.push(`${prefix}${name}${isDir ? '/' : ''}`);
      if (isDir) walk(full, `${prefix}${name}/`);
    }
  };
  walk(dir, '');
  return out;
}

const CONTENT = Buffer.from('the whole file, as its sender had it\n');
const SHA = createHash('sha256').update(CONTENT).digest();

/** One chunk a hostile or confused sender sends. */
const chunk = fc.record({
  transferId: fc.integer({ min: 1, max: 3 }),
  path: hostileString,
  // Mostly offsets that fit the file, sometimes not.
  offset: fc.oneof(fc.constantFrom(0, 0, 5, CONTENT.length), fc.nat({ max: 2 ** 40 })),
  length: fc.oneof(fc.constantFrom(0, 5, CONTENT.length), fc.nat({ max: 64 })),
  last: fc.boolean(),
  rightHash: fc.boolean(),
  size: fc.oneof(fc.constantFrom(0, CONTENT.length, 100), fc.nat()),
  mode: fc.oneof(fc.constant(0), fc.constantFrom(0o644, 0o755, 0o7777, 0o4755), fc.nat({ max: 0xffff })),
});

describe('FileReceiver, fuzzed', () => {
  it('never writes outside its root, and ends every transfer it began once (250 runs)', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(chunk, { minLength: 1, maxLength: 10 }), fc.constantFrom(0, 16, 1024), async (chunks, maxFileSize) => {
        const dir = path.join(base, `run-${run++}`);
        // The root is a directory among others: a sibling and a file beside it must stay as they are.
        const root = path.join(dir, 'root');
        mkdirSync(path.join(dir, 'sibling'), { recursive: true });
        mkdirSync(root);
        writeFileSync(path.join(dir, 'x'), 'outside');
        writeFileSync(path.join(dir, 'sibling', 'data.txt'), 'outside');
        const before = tree(dir).filter((name) => !name.startsWith('root/'));

        const done: { id: number; result: ReceivedFile | Error }[] = [];
        const receiver = new FileReceiver({
          rootFor: () => root,
          maxFileSize,
          onDone: (id, result) => done.push({ id, result }),
          pause: () => undefined,
          resume: () => undefined,
        });
        const internal = receiver as unknown as { transfers: Map<number, unknown> };
        let begun = 0;
        for (const c of chunks) {
          const data = CONTENT.subarray(Math.min(c.offset, CONTENT.length)).subarray(0, c.length);
          const message = dispy.FileChunk.decode(
            dispy.FileChunk.encode({
              transferId: c.transferId,
              path: c.path,
              offset: c.offset,
              last: c.last,
              sha256: c.last ? (c.rightHash ? SHA : Buffer.alloc(32)) : undefined,
              size: c.size,
              mode: c.mode,
              computeId: 'c1',
            }).finish(),
          );
          if (!internal.transfers.has(c.transferId) && c.offset === 0) begun++;
          // Never throws: errors end the transfer, reported through onDone.
          receiver.receive(message, data.length > 0 ? [Buffer.from(data.subarray(0, 7)), Buffer.from(data.subarray(7))] : []);
        }
        const left = internal.transfers.size;
        await receiver.abort();
        // Every transfer begun and not abandoned ends once (those ending now finish on their own).
        await vi.waitFor(() => expect(done).toHaveLength(begun - left), { timeout: 5000, interval: 5 });

        expect(tree(dir).filter((name) => !name.startsWith('root/'))).toEqual(before);
        expect(readFileSync(path.join(dir, 'x'), 'utf8')).toBe('outside');
        expect(readFileSync(path.join(dir, 'sibling', 'data.txt'), 'utf8')).toBe('outside');
        const inside = tree(root);
        expect(inside.filter((name) => name.includes('.dispy-part-'))).toEqual([]);
        for (const { result } of done) {
          if (result instanceof Error) continue;
          // A file that took its name is whole, under the root, as sent.
          expect(result.path.startsWith(root + path.sep)).toBe(true);
          expect(readFileSync(result.path).equals(CONTENT)).toBe(true);
        }
        rmSync(dir, { recursive: true, force: true });
      }),
      fuzzRuns(250),
    );
  });
});
