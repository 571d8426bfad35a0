import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { dispy, type Frame } from '@dispy/protocol';
import type { FakeNode } from '../session/fake-node.test-helper.js';
import type { JobSchedulerOptions } from './job-scheduler-options.js';
import { schedulerHarness } from './scheduler-harness.test-helper.js';
import type { JobOutcome, NodeInfo, SchedulerJob } from './types.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});

afterEach(() => {
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
});

/** The shared harness, with a resolver that knows one name, and replies named by their Job frame. */
function harness(more: Partial<JobSchedulerOptions> = {}) {
  const h = schedulerHarness({
    lookup: async (name) => {
      if (name === 'far.example') return ['127.0.0.9'];
      throw new Error(`getaddrinfo ENOTFOUND ${name}`);
    },
    ...more,
  });
  const reply = (node: FakeNode, job: Frame, status = dispy.JobStatus.FINISHED) => h.reply(node, Number(job.job!.jobId), status);
  return { ...h, reply };
}

describe('JobScheduler', () => {
  it('asks a node again after it answers "not now" (SetupReply.retry), and sets up there once it takes the computation', async () => {
    const { scheduler, spec, named, discover, submit, pingedAgain, node, reply } = harness();
    await scheduler.addComputation({ ...spec, exclusive: true });
    const first = await discover('127.0.0.2', 2);
    const setup = await first.next('setup');
    expect(setup.setup!.exclusive).toBe(true);
    first.send({
      setupReply: { computeId: 'c1', ok: false, retry: true, error: 'not now: 1 other computation runs here' },
      requestId: setup.requestId,
    });
    // Not given up: discovery pings it again, and it is not reported failed.
    await vi.waitFor(() => expect(pingedAgain.at(-1)).toBe('127.0.0.2'));
    expect(named('nodeFailed')).toEqual([]);
    const job = submit('waits');
    // The node answers discovery again: a new connection, and the setup is sent again.
    const second = await vi.waitFor(async () => {
      const again = await discover('127.0.0.2', 2);
      expect(again).not.toBe(first);
      return again;
    });
    expect(node('127.0.0.2')).toBe(second);
    const retried = await second.next('setup');
    second.send({ setupReply: { computeId: 'c1', ok: true, cpus: 2, heartbeatInterval: 0 }, requestId: retried.requestId });
    const sent = await second.next('job');
    reply(second, sent);
    await vi.waitFor(() => expect(named('jobDone').map(([, done]) => done)).toEqual([job]));
    await scheduler.close();
  });

  it('ranks a shared node by the share of its CPUs it tells (NodeCpus), even when told before the SetupReply', async () => {
    const { scheduler, spec, discover, submit, reply, named } = harness();
    await scheduler.addComputation(spec);
    // First a node shared with another client: 1 of its 2 CPUs is this client's.
    const shared = await discover('127.0.0.2', 2);
    const setup = await shared.next('setup');
    shared.send({ nodeCpus: { cpus: 1 } });
    shared.send({ setupReply: { computeId: 'c1', ok: true, cpus: 2, heartbeatInterval: 0 }, requestId: setup.requestId });
    await vi.waitFor(() => expect(scheduler.nodesOf('c1')).toHaveLength(1));
    const idle = await discover('127.0.0.3', 2);
    const idleSetup = await idle.next('setup');
    idle.send({ setupReply: { computeId: 'c1', ok: true, cpus: 2, heartbeatInterval: 0 }, requestId: idleSetup.requestId });
    await vi.waitFor(() => expect(scheduler.nodesOf('c1')).toHaveLength(2));
    for (const ref of ['a', 'b', 'c']) submit(ref);
    // One job to the shared node (half full at once), two to the idle one.
    await vi.waitFor(() => {
      expect(idle.frames.filter((frame) => frame.kind === 'job')).toHaveLength(2);
      expect(shared.frames.filter((frame) => frame.kind === 'job')).toHaveLength(1);
    });
    // NodeCpus 0 (the node takes no new jobs): none goes there, whatever its load.
    shared.send({ nodeCpus: { cpus: 0 } });
    // Its job's reply comes after the NodeCpus on the same connection: once it is in, so is the NodeCpus.
    for (const frame of shared.frames.filter((f) => f.kind === 'job')) reply(shared, frame);
    for (const frame of idle.frames.filter((f) => f.kind === 'job')) reply(idle, frame);
    await vi.waitFor(() => expect(named('jobDone')).toHaveLength(3));
    for (const ref of ['d', 'e']) submit(ref);
    await vi.waitFor(() => expect(idle.frames.filter((frame) => frame.kind === 'job')).toHaveLength(4));
    expect(shared.frames.filter((frame) => frame.kind === 'job')).toHaveLength(1);
    await scheduler.close();
  });

  it('ends one job Terminated on a reply too large to take, and keeps the connection for the others', async () => {
    // No secret: plain frames (a sealed record too large is refused whole, before it is opened).
    const { scheduler, spec, named, nodeUp, reply, submit } = harness({ secret: '' });
    await scheduler.addComputation(spec);
    const node = await nodeUp('127.0.0.2', 2);
    const big = submit('big');
    const small = submit('small');
    const [bigSent, smallSent] = [await node.next('job'), await node.next('job')];
    const stdout = 'x'.repeat(65 * 1024 * 1024);
    node.send({ jobReply: { computeId: 'c1', jobId: bigSent.job!.jobId, status: dispy.JobStatus.FINISHED, stdout } });
    reply(node, smallSent);
    await vi.waitFor(() => expect(named('jobDone')).toHaveLength(2));
    const outcomes = new Map(named('jobDone').map(([, job, outcome]) => [job, outcome as JobOutcome]));
    expect(outcomes.get(small)!.status).toBe('finished');
    expect(outcomes.get(big)!.status).toBe('terminated');
    expect(outcomes.get(big)!.exception).toMatch(/reply to this job is \d+ bytes, over this client's limit of 67108864 bytes/);
    expect(named('nodeDown')).toEqual([]);
    // Acknowledged, so a node that keeps replies until then forgets it.
    const ack = await node.next('jobAck');
    expect(ack.jobAck!.jobIds!.map(Number)).toContain(Number(bigSent.job!.jobId));
    await scheduler.close();
  });

  it('sets a computation up on a node, runs a job there and reports its own outcome type', async () => {
    const { scheduler, spec, named, nodeUp, reply, submit } = harness();
    await scheduler.addComputation(spec);
    const node = await nodeUp('127.0.0.2');
    const job = submit('a');
    const sent = await node.next('job');
    reply(node, sent);
    await vi.waitFor(() => expect(named('jobDone')).toHaveLength(1));
    const [, doneJob, outcome] = named('jobDone')[0]!;
    expect(doneJob).toBe(job);
    expect((outcome as JobOutcome).status).toBe('finished');
    await scheduler.close();
  });

  it('answers two concurrent setNodeCpus by their request ids, even out of order', async () => {
    const { scheduler, spec, nodeUp } = harness();
    await scheduler.addComputation(spec);
    const node = await nodeUp('127.0.0.2', 4);
    const one = scheduler.setNodeCpus('c1', '127.0.0.2:51348', 1);
    const three = scheduler.setNodeCpus('c1', '127.0.0.2:51348', 3);
    const a = await node.next('setCpus');
    const b = await node.next('setCpus');
    node.send({ setCpusReply: { computeId: 'c1', cpus: b.setCpus!.cpus }, requestId: b.requestId });
    node.send({ setCpusReply: { computeId: 'c1', cpus: a.setCpus!.cpus }, requestId: a.requestId });
    expect(await Promise.all([one, three])).toEqual([1, 3]);
    await scheduler.close();
  });

  it('gives -1 for setNodeCpus when the node vanishes before it answers', async () => {
    const { scheduler, spec, nodeUp, named } = harness();
    await scheduler.addComputation(spec);
    const node = await nodeUp('127.0.0.2', 2);
    const answer = scheduler.setNodeCpus('c1', '127.0.0.2:51348', 1);
    await node.next('setCpus');
    node.vanish();
    expect(await answer).toBe(-1);
    await vi.waitFor(() => expect(named('nodeDown')).toHaveLength(1));
    await scheduler.close();
  });

  it('reports a node that vanishes while its setup waits for files as failed', async () => {
    const { scheduler, spec, named, discover } = harness();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-sched-'));
    writeFileSync(path.join(dir, 'data.txt'), 'data');
    spec.files = [{ name: 'data.txt', path: path.join(dir, 'data.txt'), size: 4, mode: 0o644 }];
    await scheduler.addComputation(spec);
    const node = await discover('127.0.0.2');
    const setup = await node.next('setup');
    node.send({ fileWant: { computeId: 'c1', names: ['data.txt'] }, requestId: setup.requestId });
    await node.next('fileChunk');
    node.vanish();
    await vi.waitFor(() => expect(named('nodeFailed')).toHaveLength(1));
    expect(named('nodeFailed')[0]![2]).toMatch(/node 127\.0\.0\.2:51348 went away before answering/);
    expect(named('nodeUp')).toHaveLength(0);
    rmSync(dir, { recursive: true, force: true });
    await scheduler.close();
  });

  it('holds a job pinned to a host name until the name resolves, then runs it on that host', async () => {
    const { scheduler, spec, nodeUp, submit, named } = harness();
    await scheduler.addComputation(spec);
    const job = submit('pinned', { pin: { host: 'far.example' } });
    const other = await nodeUp('127.0.0.2');
    submit('free');
    await other.next('job');
    const far = await nodeUp('127.0.0.9');
    const sent = await far.next('job');
    expect(Number(sent.job!.jobId)).toBe(job.uid);
    expect(named('jobStarted').map(([, started]) => (started as SchedulerJob<string>).ref)).toEqual(['free', 'pinned']);
    await scheduler.close();
  });

  it('ends a job pinned to a name that does not resolve, cancelled, naming it', async () => {
    const { scheduler, spec, submit, named } = harness();
    await scheduler.addComputation(spec);
    submit('lost', { pin: { host: 'nowhere.example' } });
    await vi.waitFor(() => expect(named('jobFailed')).toHaveLength(1));
    expect(named('jobFailed')[0]!.slice(2)).toEqual(['cancelled', expect.stringMatching(/node nowhere\.example could not be resolved/)]);
    await scheduler.close();
  });

  it('ends a job whose depends file is deleted before it is sent: terminated, naming the file, and the node never hears of it', async () => {
    const { scheduler, spec, nodeUp, submit, named, reply } = harness();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-sched-'));
    const file = path.join(dir, 'input.txt');
    writeFileSync(file, 'input');
    await scheduler.addComputation(spec);
    const node = await nodeUp('127.0.0.2');
    const blocker = submit('blocker');
    const blockerFrame = await node.next('job');
    const withFile = submit('with-file', { files: [file] });
    // The job is held while its file is described, then queued behind the blocker (1 CPU).
    await vi.waitFor(() => expect(scheduler['engine'].isHeld(withFile.uid)).toBe(false));
    rmSync(dir, { recursive: true, force: true });
    reply(node, blockerFrame);
    await vi.waitFor(() => expect(named('jobFailed')).toHaveLength(1));
    const [, failed, status, why, at] = named('jobFailed')[0]!;
    expect(failed).toBe(withFile);
    expect(status).toBe('terminated');
    expect(why).toMatch(/input\.txt/);
    expect((at as NodeInfo).key).toBe('127.0.0.2:51348');
    // Its CPU is free again: the next job goes out, and no chunk or job frame of the failed one did.
    submit('next');
    const next = await node.next('job');
    expect(Number(next.job!.jobId)).not.toBe(withFile.uid);
    expect(node.frames.filter((frame) => frame.kind === 'fileChunk')).toHaveLength(0);
    expect(blocker.uid).toBeLessThan(withFile.uid);
    await scheduler.close();
  });

  it("sends a job's files before the job, and the job after them", async () => {
    const { scheduler, spec, nodeUp, submit } = harness();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-sched-'));
    const file = path.join(dir, 'input.txt');
    writeFileSync(file, 'input');
    await scheduler.addComputation(spec);
    const node = await nodeUp('127.0.0.2');
    const job = submit('with-file', { files: [file] });
    const sent = await node.next('job');
    expect(Number(sent.job!.jobId)).toBe(job.uid);
    expect(sent.job!.files).toEqual(['input.txt']);
    const chunk = await node.next('fileChunk');
    expect(chunk.fileChunk!).toMatchObject({ path: 'input.txt', last: true });
    node.send({ fileDone: { transferId: chunk.fileChunk!.transferId, ok: true } });
    rmSync(dir, { recursive: true, force: true });
    await scheduler.close();
  });

  it('resolves closeNode when the last running job of the computation there finishes', async () => {
    const { scheduler, spec, nodeUp, submit, reply, named } = harness();
    await scheduler.addComputation(spec);
    const node = await nodeUp('127.0.0.2');
    submit('running');
    const sent = await node.next('job');
    let closed = false;
    const closing = scheduler.closeNode('c1', '127.0.0.2:51348', false).then((result) => {
      closed = result;
    });
    await vi.advanceTimersByTimeAsync(1000);
    expect(closed).toBe(false);
    reply(node, sent);
    await closing;
    expect((await node.next('close')).close).toMatchObject({ computeId: 'c1', terminatePending: false });
    expect(closed).toBe(true);
    expect(named('nodeDown')).toHaveLength(1);
    await scheduler.close();
  });

  it('resolves closeNode when the node goes away while its jobs run', async () => {
    const { scheduler, spec, nodeUp, submit, named } = harness();
    await scheduler.addComputation(spec);
    const node = await nodeUp('127.0.0.2');
    submit('running');
    await node.next('job');
    const closing = scheduler.closeNode('c1', '127.0.0.2:51348', false);
    node.vanish();
    expect(await closing).toBe(true);
    expect(named('nodeDown')[0]![2]).toHaveLength(1);
    await scheduler.close();
  });

  it('requeues a job the node refuses because it stopped, saying which node it left', async () => {
    const { scheduler, spec, nodeUp, submit, named } = harness();
    await scheduler.addComputation(spec);
    const node = await nodeUp('127.0.0.2');
    submit('bounced');
    const sent = await node.next('job');
    node.send({ error: { code: 'DISPY_ERR_NODE_STOPPED', message: 'stopped', jobId: sent.job!.jobId } });
    await vi.waitFor(() => expect(named('jobRequeued')).toHaveLength(1));
    expect((named('jobRequeued')[0]![2] as NodeInfo).key).toBe('127.0.0.2:51348');
    // It goes out again (to the same node, the only one).
    await node.next('job');
    await scheduler.close();
  });
});

describe('JobScheduler receiving the files of jobs', () => {
  it('takes a file only for a job of its own running on that node, confined, masked, within the limits', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-sched-files-'));
    const away = mkdtempSync(path.join(os.tmpdir(), 'dispy-sched-away-'));
    symlinkSync(away, path.join(dir, 'link'));
    writeFileSync(path.join(dir, 'precious.txt'), 'mine');
    const { scheduler, spec, nodeUp, submit, reply } = harness({ fileDir: dir, maxFileSize: 100, maxJobFilesSize: 150 });
    await scheduler.addComputation(spec);
    const node = await nodeUp('127.0.0.2');
    submit('a');
    const sent = await node.next('job');
    const jobId = Number(sent.job!.jobId);
    let transferId = 0;
    /** A node's job sends a file (forged as a man in the middle would); resolves with the client's FileDone. */
    const send = async (name: string, data: Buffer, extra: Partial<dispy.IFileChunk> = {}) => {
      const sha256 = createHash('sha256').update(data).digest();
      const chunk = { transferId: ++transferId, path: name, offset: 0, last: true, size: data.length, sha256, computeId: 'c1', jobId };
      node.send({ fileChunk: { ...chunk, ...extra } }, data);
      return (await node.next('fileDone')).fileDone!;
    };
    expect(await send('out/result.txt', Buffer.from('ok'), { mode: 0o6777 })).toMatchObject({ ok: true });
    expect(statSync(path.join(dir, 'out/result.txt')).mode & 0o7777).toBe(0o755);
    // A later job's file may replace one that a job sent, never one that was there before.
    expect(await send('out/result.txt', Buffer.from('ok2'))).toMatchObject({ ok: true });
    for (const [name, extra, why] of [
      ['../x.txt', {}, /must not contain "\.\."/],
      ['/tmp/x.txt', {}, /must be relative/],
      ['link/x.txt', {}, /symbolic link; refused/],
      ['precious.txt', {}, /exists already and was not sent by this cluster/],
      ['node_modules/evil/index.js', {}, /files of jobs may not go there/],
      ['.npmrc', {}, /files of jobs may not go there/],
      ['other.txt', { jobId: jobId + 100 }, /no job \d+ of this client runs on 127\.0\.0\.2:51348/],
      ['other.txt', { computeId: 'c2' }, /no job \d+ of this client runs/],
      ['big.bin', { size: 101 }, /exceeds the size limit of 100 bytes/],
    ] as const) {
      const data = name === 'big.bin' ? Buffer.alloc(101) : Buffer.from('evil');
      const done = await send(name, data, extra);
      expect(done.ok).toBe(false);
      expect(done.error).toMatch(why);
    }
    expect(await send('a.bin', Buffer.alloc(100))).toMatchObject({ ok: true });
    expect((await send('b.bin', Buffer.alloc(60))).error).toMatch(/exceeds the limit of 150 bytes for the files of job/);
    expect(readFileSync(path.join(dir, 'precious.txt'), 'utf8')).toBe('mine');
    expect(readdirSync(away)).toEqual([]);
    expect(readdirSync(dir).sort()).toEqual(['a.bin', 'link', 'out', 'precious.txt']);
    expect(existsSync(path.join(dir, 'node_modules'))).toBe(false);
    // Once the job has ended, nothing more is taken for it.
    reply(node, sent);
    await vi.waitFor(async () => expect((await send('late.txt', Buffer.from('late'))).error).toMatch(/no job/));
    expect(existsSync(path.join(dir, 'late.txt'))).toBe(false);
    await scheduler.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(away, { recursive: true, force: true });
  });
});

describe('jobs sent ahead, taken back for a node with idle CPUs', () => {
  /** Node a (1 CPU) takes jobs 'x' and 'y' (two per CPU); 'x' starts there; then node b (1 CPU) comes up. */
  async function twoOnA() {
    const h = harness({ engine: { jobsPerCpu: 2 } });
    await h.scheduler.addComputation(h.spec);
    const a = await h.nodeUp('127.0.0.2', 1);
    const x = h.submit('x');
    const y = h.submit('y');
    const [xSent, ySent] = [await a.next('job'), await a.next('job')];
    a.send({ jobEvent: { computeId: 'c1', event: dispy.JobEvent.Event.RUNNING, jobIds: [Number(xSent.job!.jobId)], startTimes: [1234] } });
    await vi.waitFor(() => expect(h.named('jobsRunning')).toHaveLength(1));
    const b = await h.nodeUp('127.0.0.3', 1);
    const reclaim = await a.next('reclaim');
    // Only the job not known to have started is asked back.
    expect(reclaim.reclaim!.jobIds!.map(Number)).toEqual([Number(ySent.job!.jobId)]);
    return { ...h, a, b, x, y, xSent, ySent, reclaim };
  }

  it('reports the starts a node sends, with their start times', async () => {
    const { scheduler, named, x, a, reclaim } = await twoOnA();
    const [, started, node] = named('jobsRunning')[0]!;
    expect(started).toEqual([{ job: x, startTime: 1234 }]);
    expect((node as NodeInfo).key).toBe('127.0.0.2:51348');
    a.send({ reclaimReply: { computeId: 'c1', jobIds: [] }, requestId: reclaim.requestId });
    await scheduler.close();
  });

  it('requeues a job the node dropped, and sends it to the idle node', async () => {
    const { scheduler, named, a, b, y, ySent, reclaim } = await twoOnA();
    a.send({ reclaimReply: { computeId: 'c1', jobIds: [Number(ySent.job!.jobId)] }, requestId: reclaim.requestId });
    const moved = await b.next('job');
    expect(Number(moved.job!.jobId)).toBe(Number(ySent.job!.jobId));
    expect(named('jobRequeued').map(([, job, from]) => [job, (from as NodeInfo).key])).toEqual([[y, '127.0.0.2:51348']]);
    expect(
      named('jobStarted')
        .map(([, job, to]) => [job, (to as NodeInfo).key])
        .at(-1),
    ).toEqual([y, '127.0.0.3:51348']);
    await scheduler.close();
  });

  it('leaves a job the node did not drop (it started meanwhile) where it is, and never asks for it again', async () => {
    const { scheduler, named, reply, a, b, y, ySent, reclaim } = await twoOnA();
    a.send({ reclaimReply: { computeId: 'c1', jobIds: [] }, requestId: reclaim.requestId });
    reply(a, ySent);
    await vi.waitFor(() => expect(named('jobDone').map(([, job]) => job)).toEqual([y]));
    expect(named('jobRequeued')).toEqual([]);
    expect(b.frames.filter((frame) => frame.kind === 'job')).toEqual([]);
    // Not asked again (the one request was taken by twoOnA).
    expect(a.frames.filter((frame) => frame.kind === 'reclaim')).toEqual([]);
    await scheduler.close();
  });

  it('ends a job cancelled while it was being taken back, once the node says it dropped it: cancelled, never sent elsewhere', async () => {
    const { scheduler, named, a, b, y, ySent, reclaim } = await twoOnA();
    expect(scheduler.cancel(y)).toBe('sent');
    a.send({ reclaimReply: { computeId: 'c1', jobIds: [Number(ySent.job!.jobId)] }, requestId: reclaim.requestId });
    await vi.waitFor(() => expect(named('jobFailed').map(([, job, status]) => [job, status])).toEqual([[y, 'cancelled']]));
    expect(b.frames.filter((frame) => frame.kind === 'job')).toEqual([]);
    await scheduler.close();
  });
});
