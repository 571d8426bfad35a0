import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DispyError, ErrorCode, dispy } from '@dispy/protocol';
import { DispyJob, RecoverFileWriter, newestRecoverFile, readRecoverFile, recoverJobs } from '../src/index.js';
import { FakeDispynode, finished } from './fake-dispynode.js';

// Fake nodes of this file listen on 127.0.110.*.
const cid = 'c0ffee';
let dir: string;
const nodes: FakeDispynode[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dispy-recover-jobs-'));
});

afterEach(async () => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
  await Promise.all(nodes.splice(0).map((node) => node.stop()));
  fs.rmSync(dir, { recursive: true, force: true });
});

async function fakeNode(host: string, secret = ''): Promise<FakeDispynode> {
  const node = await FakeDispynode.start(host, secret);
  nodes.push(node);
  return node;
}

/** A recover file whose jobs `running` went to their nodes, with these program ids. */
function recoverFile(
  running: Array<{ job: number; node: FakeDispynode | { host: string; port: number }; id?: unknown }>,
  name = 'recover',
): string {
  const writer = RecoverFileWriter.create(path.join(dir, name), { computeId: cid, name: 'compute' });
  for (const { job, node, id } of running) writer.jobRunning(job, { host: node.host, port: node.port, name: `n${node.port}` }, id);
  writer.close();
  return writer.path;
}

function summary(jobs: DispyJob[]) {
  return jobs.map((job) => ({ id: job.id, status: DispyJob.statusName(job.status), result: job.result, exception: job.exception }));
}

describe('recoverJobs', () => {
  it('collects the saved replies and those of held jobs as they end, acknowledges them, releases the computation and deletes the file', async () => {
    const node = await fakeNode('127.0.110.1');
    node.computations.set(cid, {
      held: [3],
      saved: [
        finished(cid, 1, 'one', 'out of one'),
        { computeId: cid, jobId: 2, status: dispy.JobStatus.TERMINATED, exception: 'Error: two failed' },
        finished(cid, 4, 'four, delivered already'),
      ],
    });
    const file = recoverFile([
      { job: 1, node, id: 'a' },
      { job: 2, node, id: { not: 'recordable' } },
      { job: 3, node, id: 33 },
      { job: 4, node },
    ]);
    const writer = RecoverFileWriter.append(file, await readRecoverFile(file));
    writer.jobEnded(4, 'finished');
    writer.close();

    const recovering = recoverJobs(file);
    await node.received('reattach');
    node.finish(cid, finished(cid, 3, { three: 3 }));
    const jobs = await recovering;

    expect(summary(jobs)).toEqual([
      { id: 'a', status: 'Finished', result: 'one', exception: undefined },
      { id: 2, status: 'Terminated', result: undefined, exception: 'Error: two failed' },
      { id: 33, status: 'Finished', result: { three: 3 }, exception: undefined },
    ]);
    expect(jobs[0]!.stdout).toBe('out of one');
    expect(jobs[0]!.ipAddr).toBe('127.0.110.1');
    expect(await Promise.all(jobs.map((job) => job.wait()))).toEqual(['one', undefined, { three: 3 }]);
    expect(node.acked.sort()).toEqual([1, 2, 3, 4]);
    expect(node.frames.find((frame) => frame.kind === 'jobAck')!.jobAck!.computeId).toBe(cid);
    expect((await node.received('close')).close).toMatchObject({ computeId: cid });
    expect(node.computations.size).toBe(0);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('with a timeout and terminatePending, returns what finished and terminates the rest', async () => {
    const node = await fakeNode('127.0.110.2');
    node.computations.set(cid, { held: [1, 2], saved: [finished(cid, 3, 3)] });
    const file = recoverFile([1, 2, 3].map((job) => ({ job, node })));
    const jobs = await recoverJobs(file, { timeout: 0.2, terminatePending: true });
    expect(summary(jobs)).toEqual([
      { id: 1, status: 'Terminated', result: undefined, exception: 'terminated: its computation closed' },
      { id: 2, status: 'Terminated', result: undefined, exception: 'terminated: its computation closed' },
      { id: 3, status: 'Finished', result: 3, exception: undefined },
    ]);
    expect((await node.received('close')).close).toMatchObject({ computeId: cid, terminatePending: true });
    expect(fs.existsSync(file)).toBe(false);
  });

  it('with a timeout alone, leaves running jobs running and keeps the file for another call', async () => {
    const node = await fakeNode('127.0.110.3');
    node.computations.set(cid, { held: [1], saved: [finished(cid, 2, 'two')] });
    const file = recoverFile([1, 2].map((job) => ({ job, node })));
    const first = await recoverJobs(file, { timeout: 0.1 });
    expect(summary(first)).toEqual([
      { id: 1, status: 'Running', result: undefined, exception: undefined },
      { id: 2, status: 'Finished', result: 'two', exception: undefined },
    ]);
    expect(node.frames.some((frame) => frame.kind === 'close')).toBe(false);
    expect(node.acked).toEqual([2]);
    expect((await readRecoverFile(file)).jobs.get(2)?.state).toBe('finished');

    node.finish(cid, finished(cid, 1, 'one at last'));
    const second = await recoverJobs(file);
    expect(summary(second)).toEqual([{ id: 1, status: 'Finished', result: 'one at last', exception: undefined }]);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('names a node that cannot be reached in its jobs, returns the other nodes’ jobs, and keeps the file', async () => {
    const node = await fakeNode('127.0.110.4');
    node.computations.set(cid, { held: [], saved: [finished(cid, 1, 'one')] });
    const gone = await fakeNode('127.0.110.5');
    await gone.stop();
    nodes.pop();
    const file = recoverFile([
      { job: 1, node },
      { job: 2, node: gone },
    ]);
    const jobs = await recoverJobs(file);
    expect(summary(jobs)[0]).toEqual({ id: 1, status: 'Finished', result: 'one', exception: undefined });
    expect(jobs[1]!.status).toBe(DispyJob.Cancelled);
    expect(jobs[1]!.exception).toMatch(
      new RegExp(`^node n${gone.port} \\(127\\.0\\.110\\.5:${gone.port}\\) could not be reached: .*ECONNREFUSED`),
    );
    const left = await readRecoverFile(file);
    expect([left.jobs.get(1)?.state, left.jobs.get(2)?.state]).toEqual(['finished', 'running']);
  });

  it('says so when a node knows nothing of the computation, or of a job', async () => {
    const stranger = await fakeNode('127.0.110.6');
    const node = await fakeNode('127.0.110.7');
    node.computations.set(cid, { held: [], saved: [] });
    const file = recoverFile([
      { job: 1, node: stranger },
      { job: 2, node },
    ]);
    const jobs = await recoverJobs(file);
    expect(jobs.map((job) => job.status)).toEqual([DispyJob.Cancelled, DispyJob.Cancelled]);
    expect(jobs[0]!.exception).toMatch(/^node \S+ \(127\.0\.110\.6:\d+\) has no computation c0ffee \(no such computation\)/);
    expect(jobs[1]!.exception).toMatch(/^node \S+ \(127\.0\.110\.7:\d+\) has no record of the job/);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('takes the secret from DISPY_SECRET, and names the node when it differs', async () => {
    const node = await fakeNode('127.0.110.8', 'open sesame, please');
    node.computations.set(cid, { held: [], saved: [finished(cid, 1, 'one')] });
    const file = recoverFile([{ job: 1, node }]);
    const refused = await recoverJobs(file, { secret: 'wrong secret here' });
    expect(refused[0]!.exception).toMatch(/^node \S+ \(127\.0\.110\.8:\d+\) could not be reached: .*secret/);
    expect(fs.existsSync(file)).toBe(true);
    vi.stubEnv('DISPY_SECRET', 'open sesame, please');
    expect(summary(await recoverJobs(file))).toEqual([{ id: 1, status: 'Finished', result: 'one', exception: undefined }]);
  });

  it('uses the newest _dispy_* file of the working directory without a path', async () => {
    const node = await fakeNode('127.0.110.9');
    node.computations.set(cid, { held: [], saved: [finished(cid, 1, 'newest')] });
    const older = recoverFile([{ job: 1, node: { host: '127.0.110.9', port: 1 } }], '_dispy_20260101000000');
    fs.utimesSync(older, new Date(2026, 0, 1), new Date(2026, 0, 1));
    recoverFile([{ job: 1, node }], '_dispy_20260101000001');
    fs.mkdirSync(path.join(dir, '_dispy_dir'));
    vi.spyOn(process, 'cwd').mockReturnValue(dir);
    expect(await newestRecoverFile(dir)).toBe(path.join(dir, '_dispy_20260101000001'));
    expect(summary(await recoverJobs())).toEqual([{ id: 1, status: 'Finished', result: 'newest', exception: undefined }]);
    expect(fs.existsSync(older)).toBe(true);
  });

  it('throws a DispyError naming the file when there is none, or it is not a recover file', async () => {
    const codeOf = (promise: Promise<unknown>) =>
      promise.then(
        () => 'resolved',
        (error: unknown) => (DispyError.isInstance(error) ? `${error.code}: ${error.message}` : String(error)),
      );
    vi.spyOn(process, 'cwd').mockReturnValue(dir);
    expect(await codeOf(recoverJobs())).toBe(
      `${ErrorCode.RECOVER_FILE}: no recover file (_dispy_*) in ${dir}; name the file: recoverJobs(path)`,
    );
    const missing = path.join(dir, 'missing');
    expect(await codeOf(recoverJobs(missing))).toBe(`${ErrorCode.RECOVER_FILE}: recover file ${missing} does not exist`);
    const foreign = path.join(dir, 'foreign');
    fs.writeFileSync(foreign, '# notes\n');
    expect(await codeOf(recoverJobs(foreign))).toMatch(/^DISPY_ERR_RECOVER_FILE: recover file \S+foreign is not a dispy recover file/);
    expect(await codeOf(recoverJobs(foreign, { timeout: -1 }))).toMatch(/^DISPY_ERR_OPTION: recoverJobs: timeout must be/);
  });

  it('deletes a file with nothing pending, asking no node', async () => {
    const file = recoverFile([]);
    expect(await recoverJobs(file)).toEqual([]);
    expect(fs.existsSync(file)).toBe(false);
  });
});
