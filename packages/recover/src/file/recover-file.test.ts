import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DispyError, ErrorCode } from '@dispy/protocol';
import { readRecoverFile } from './recover-file-reader.js';
import { RecoverFileWriter } from './recover-file-writer.js';

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dispy-recover-file-'));
});

afterEach(() => {
  vi.useRealTimers();
  fs.rmSync(dir, { recursive: true, force: true });
});

const init = { computeId: 'c0ffee', name: 'compute' };
const n1 = { host: '127.0.0.1', port: 51348, name: 'n1' };
const n2 = { host: '::1', port: 51349, name: 'n2' };

/** A file with a header, two nodes and jobs in every state; returns its path. */
function sampleFile(): string {
  const writer = RecoverFileWriter.create(path.join(dir, 'sample'), init);
  writer.jobRunning(1, n1, 'first');
  writer.jobRunning(2, n2, { not: 'kept' });
  writer.jobRunning(3, n1, 3);
  writer.jobEnded(1, 'finished');
  writer.jobQueued(3);
  writer.jobRunning(3, n2, true);
  writer.jobRunning(4, n1);
  writer.jobEnded(4, 'terminated');
  writer.close();
  return writer.path;
}

async function failure(promise: Promise<unknown>): Promise<DispyError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(DispyError.isInstance(error)).toBe(true);
  expect((error as DispyError).code).toBe(ErrorCode.RECOVER_FILE);
  return error as DispyError;
}

describe('the recover file', () => {
  it('reads back the header, the nodes and the last state of each job', async () => {
    const file = sampleFile();
    const contents = await readRecoverFile(file);
    expect(contents.header).toMatchObject({ type: 'header', format: 'dispy-recover', version: 1, computeId: 'c0ffee', name: 'compute' });
    expect(contents.header.client).toBe(os.hostname());
    expect(contents.header).not.toHaveProperty('tls');
    expect([...contents.nodes.values()]).toEqual([
      { type: 'node', node: 0, ...n1 },
      { type: 'node', node: 1, ...n2 },
    ]);
    expect(Object.fromEntries(contents.jobs)).toEqual({
      1: { job: 1, state: 'finished', node: 0, id: 'first' },
      2: { job: 2, state: 'running', node: 1 },
      3: { job: 3, state: 'running', node: 1, id: true },
      4: { job: 4, state: 'terminated', node: 0 },
    });
    expect(contents.damaged).toEqual([]);
    expect(contents.wholeBytes).toBe(fs.statSync(file).size);
  });

  it('never holds a secret: only what recovery needs', () => {
    const writer = RecoverFileWriter.create(path.join(dir, 'tls'), { ...init, tls: { cafile: '/etc/ca.pem' } });
    writer.jobRunning(1, n1, 'x');
    writer.close();
    const text = fs.readFileSync(writer.path, 'utf8');
    expect(text).toContain('"cafile":"/etc/ca.pem"');
    expect(Object.keys(JSON.parse(text.split('\n')[0]!) as object).sort()).toEqual(
      ['client', 'computeId', 'createdAt', 'format', 'name', 'tls', 'type', 'version'].sort(),
    );
    expect(fs.statSync(writer.path).mode & 0o777).toBe(0o600);
  });

  it('loads what a file cut at any byte of its last record holds', async () => {
    const file = sampleFile();
    const bytes = fs.readFileSync(file);
    const lastStart = bytes.lastIndexOf(0x0a, bytes.length - 2) + 1;
    const whole = await readRecoverFile(file);
    const withoutLast = { ...Object.fromEntries(whole.jobs), 4: { job: 4, state: 'running', node: 0 } };
    for (let cut = lastStart; cut < bytes.length; cut++) {
      fs.writeFileSync(file, bytes.subarray(0, cut));
      const contents = await readRecoverFile(file);
      expect(Object.fromEntries(contents.jobs), `cut at ${cut}`).toEqual(withoutLast);
      expect(contents.wholeBytes).toBe(lastStart);
      expect(contents.damaged).toEqual([]);
    }
  });

  it('says a file cut inside its header is cut short, at every byte', async () => {
    const file = sampleFile();
    const bytes = fs.readFileSync(file);
    const headerEnd = bytes.indexOf(0x0a);
    for (let cut = 0; cut <= headerEnd; cut++) {
      fs.writeFileSync(file, bytes.subarray(0, cut));
      const error = await failure(readRecoverFile(file));
      expect(error.message, `cut at ${cut}`).toBe(
        `recover file ${file} is cut short: its header is incomplete (${cut} bytes), so it records nothing`,
      );
    }
  });

  it('refuses a missing file, a foreign one and one of a newer format, naming the file', async () => {
    const missing = path.join(dir, 'nope');
    expect((await failure(readRecoverFile(missing))).message).toBe(`recover file ${missing} does not exist`);
    const foreign = path.join(dir, 'foreign');
    for (const content of ['hello world\n', '{"type":"header","format":"other","version":1}\n', '\x00\x01\x02', '[1,2]\n{}\n']) {
      fs.writeFileSync(foreign, content);
      expect((await failure(readRecoverFile(foreign))).message).toMatch(new RegExp(`^recover file ${foreign} is not a dispy recover file`));
    }
    const newer = path.join(dir, 'newer');
    fs.writeFileSync(newer, '{"type":"header","format":"dispy-recover","version":2,"computeId":"x"}\n');
    expect((await failure(readRecoverFile(newer))).message).toBe(
      `recover file ${newer} was written by a newer release of dispy (recover file format 2); this release reads format 1 and older`,
    );
  });

  it('skips a damaged line in the middle and names it', async () => {
    const file = sampleFile();
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    lines.splice(
      3,
      0,
      '{"type":"job","job":9,"sta',
      '{"type":"job","job":-1,"state":"running","node":0}',
      '{"type":"job","job":8,"state":"lost"}',
    );
    fs.writeFileSync(file, lines.join('\n'));
    const contents = await readRecoverFile(file);
    expect(contents.damaged).toEqual([4, 5, 6]);
    expect([...contents.jobs.keys()].sort()).toEqual([1, 2, 3, 4]);
  });
});

describe('RecoverFileWriter', () => {
  it('writes in batches: at most every flushMs, or at once when flushRecords are waiting', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const writer = RecoverFileWriter.create(path.join(dir, 'batched'), init, { flushMs: 50, flushRecords: 10 });
    const lines = () => fs.readFileSync(writer.path, 'utf8').split('\n').length - 1;
    expect(lines()).toBe(1); // the header, at once
    writer.jobRunning(1, n1);
    writer.jobRunning(2, n1);
    expect(lines()).toBe(1);
    vi.advanceTimersByTime(49);
    expect(lines()).toBe(1);
    vi.advanceTimersByTime(1);
    expect(lines()).toBe(4); // node, two jobs
    for (let job = 3; job < 12; job++) writer.jobRunning(job, n1);
    expect(lines()).toBe(4);
    writer.jobRunning(12, n1); // the tenth waiting record
    expect(lines()).toBe(14);
    expect(vi.getTimerCount()).toBe(0);
    writer.jobEnded(12, 'finished');
    expect(vi.getTimerCount()).toBe(1);
    writer.close();
    expect(lines()).toBe(15);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('counts the jobs on nodes, and removes the file on request', () => {
    const writer = RecoverFileWriter.create(path.join(dir, 'counted'), init);
    writer.jobRunning(1, n1);
    writer.jobRunning(2, n2);
    writer.jobRunning(3, n2);
    expect(writer.pending).toBe(3);
    writer.jobQueued(2);
    writer.jobEnded(3, 'cancelled');
    expect(writer.pending).toBe(1);
    writer.close({ remove: true });
    expect(fs.existsSync(writer.path)).toBe(false);
  });

  it('refuses to overwrite a file it is given, and numbers default names taken this second', () => {
    const taken = path.join(dir, 'taken');
    fs.writeFileSync(taken, 'old');
    expect(() => RecoverFileWriter.create(taken, init)).toThrow(/^recover file .*taken exists: it may hold the jobs of a client that died/);
    expect(fs.readFileSync(taken, 'utf8')).toBe('old');
    vi.useFakeTimers({ toFake: ['Date'], now: new Date(2026, 0, 2, 3, 4, 5) });
    const writers = [1, 2, 3].map(() => RecoverFileWriter.create(undefined, init, { dir }));
    expect(writers.map((writer) => path.basename(writer.path))).toEqual([
      '_dispy_20260102030405',
      '_dispy_20260102030405_2',
      '_dispy_20260102030405_3',
    ]);
    for (const writer of writers) writer.close();
  });

  it('appends after the last whole record, dropping a record cut short', async () => {
    const file = sampleFile();
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 5));
    const contents = await readRecoverFile(file);
    const writer = RecoverFileWriter.append(file, contents);
    writer.jobEnded(2, 'finished');
    writer.jobRunning(5, n2);
    writer.close();
    const again = await readRecoverFile(file);
    expect(again.damaged).toEqual([]);
    expect(again.jobs.get(2)?.state).toBe('finished');
    expect(again.jobs.get(5)).toEqual({ job: 5, state: 'running', node: 1 });
    expect(again.nodes.size).toBe(2);
  });

  it('deletes its file when the process exits with no job pending (removeOnExit), and keeps it with jobs pending', async () => {
    // A separate process that exits without close(); it uses the built package (pnpm build).
    const dist = fileURLToPath(new URL('../../dist/index.js', import.meta.url));
    const exitWith = async (name: string, ended: boolean) => {
      const file = path.join(dir, name);
      const script = `
        import { RecoverFileWriter } from ${JSON.stringify(dist)};
        const writer = RecoverFileWriter.create(${JSON.stringify(file)}, { computeId: 'c', name: 'n' }, { removeOnExit: true });
        writer.jobRunning(1, { host: '127.0.0.1', port: 1, name: 'n1' });
        ${ended ? "writer.jobEnded(1, 'finished');" : ''}
      `;
      await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
      return file;
    };
    expect(fs.existsSync(await exitWith('done', true))).toBe(false);
    const kept = await exitWith('pending', false);
    expect((await readRecoverFile(kept)).jobs.get(1)?.state).toBe('running');
  });
});
