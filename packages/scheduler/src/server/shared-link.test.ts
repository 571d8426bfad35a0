import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuthError, dispy, encodeArguments } from '@dispy/protocol';
import { createLogger } from '@dispy/protocol/internal';
import { socketPair } from '../../../../testing/socket-pair.js';
import type { ComputationEvents, ComputationSpec, NodeAllocator, NodeInfo, SchedulerJob } from '../cluster/types.js';
import { ClientLink, type ClientJobRef, type ClientLinkContext } from './client-link.js';
import { RemoteScheduler } from './remote-scheduler.js';

/*
 * A SharedJobCluster's scheduler (RemoteScheduler) and dispyscheduler's side of its connection
 * (ClientLink) over in-memory sockets, with a fake JobScheduler behind the link: what crosses the
 * wire both ways, and what each side does when the other goes.
 */

const SECRET = 'the cluster secret of these tests';
const logger = createLogger('test', 'silent');
let dir: string;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-shared-link-'));
});

afterEach(() => {
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
  rmSync(dir, { recursive: true, force: true });
});

/** Lets the in-memory sockets (process.nextTick) and the file writes go on. */
async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Waits for `condition` (sockets and file system at work), at most 10 s of real time (Date is faked; performance is not). */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!condition() && performance.now() < deadline) await settle(1);
  if (!condition()) throw new Error(`never: ${what}`);
}

/** The scheduler behind the link: records what the link asks of it. */
function fakeScheduler(secret = SECRET) {
  const added: { setup: dispy.Setup; files: { name: string; path: string }[]; nodes: string[]; events: ComputationEvents<ClientJobRef> }[] =
    [];
  const submitted: { job: SchedulerJob<ClientJobRef>; args: Uint8Array; priority: number; pin?: unknown; files?: string[] }[] = [];
  const closed: string[] = [];
  const ended: ClientLink[] = [];
  let uid = 100;
  const context: ClientLinkContext = {
    secret,
    logger,
    heartbeatSeconds: 10,
    // No `kept` registry: a lost client's computations are closed at once, and clients are told so (0 s).
    zombieSeconds: 0,
    name: 'dispyscheduler@test',
    fileDir: dir,
    maxFileSize: 0,
    addComputation: (setup, files, nodes, events) => {
      added.push({ setup, files, nodes, events });
      return Promise.resolve();
    },
    nodeOps: {
      sendFile: () => Promise.resolve(false),
      closeNode: () => Promise.resolve(false),
      deallocate: () => false,
      allocate: () => Promise.resolve(),
      setNodeCpus: () => Promise.resolve({ cpus: 2, unchanged: true }),
      jobFileDone: () => undefined,
    },
    submit: (request) => {
      const job = { uid: uid++, computeId: request.computeId, priority: request.priority, ref: request.ref };
      submitted.push({ job, args: request.args, priority: request.priority, pin: request.pin, files: request.files });
      return job;
    },
    cancel: () => 'dequeued',
    closeComputation: (computeId) => {
      closed.push(computeId);
      return Promise.resolve();
    },
    onEnd: (link) => ended.push(link),
  };
  return { context, added, submitted, closed, ended };
}

/** Records a computation's events as the client's ledger would get them. */
function recorder() {
  const calls: [string, ...unknown[]][] = [];
  const events: ComputationEvents<string> = {
    nodeUp: (node) => calls.push(['nodeUp', node.key]),
    nodeDown: (node, lost, why) => calls.push(['nodeDown', node.key, lost.map((job) => job.ref), why]),
    nodeFailed: (node, error) => calls.push(['nodeFailed', node.key, error]),
    nodeAvailInfo: (node) => calls.push(['nodeAvailInfo', node.key]),
    jobStarted: (job, node) => calls.push(['jobStarted', job.ref, node.key]),
    jobsRunning: (started, node) => calls.push(['jobsRunning', started.map(({ job }) => job.ref), node.key]),
    jobProvisional: (job, result, node) => calls.push(['jobProvisional', job.ref, Buffer.from(result).toString(), node.key]),
    jobDone: (job, outcome, node) => calls.push(['jobDone', job.ref, outcome.status, Buffer.from(outcome.result).toString(), node.key]),
    jobFailed: (job, status, why, node) => calls.push(['jobFailed', job.ref, status, why, node?.key]),
    jobRequeued: (job, from) => calls.push(['jobRequeued', job.ref, from.key]),
  };
  return { calls, events };
}

function specWith(events: ComputationEvents<string>, files: ComputationSpec<string>['files'] = []): ComputationSpec<string> {
  const allocator: NodeAllocator = { host: '127.0.0.*', isWildcard: true, resolved: new Set(), allocate: () => 1 };
  return {
    computeId: 'c0ffee',
    name: 'double',
    kind: dispy.ComputationKind.FUNCTION,
    source: '(n) => n * 2',
    definitions: [],
    files,
    destPath: '',
    cleanup: true,
    allocators: [allocator],
    reentrant: true,
    maxRetries: 2,
    exclusive: true,
    pulseInterval: 0,
    owner: undefined,
    events,
  };
}

const NODE: NodeInfo = {
  key: '127.0.0.5:51348',
  host: '127.0.0.5',
  port: 51348,
  name: 'n5',
  cpus: 2,
  totalCpus: 4,
  lastHeard: 0,
  platform: 'linux',
  tx: 0,
  rx: 0,
};

/** A RemoteScheduler whose every connection is a new in-memory pair with a ClientLink on the other end. */
function connected(fake: ReturnType<typeof fakeScheduler>, secret = SECRET) {
  const links: ClientLink[] = [];
  const remote = new RemoteScheduler<string>({
    host: '127.0.0.1',
    port: 51349,
    secret,
    clientName: 'test client',
    logger,
    connect: () => {
      const { client, server } = socketPair();
      links.push(new ClientLink(server.asSocket(), fake.context));
      return client.asSocket();
    },
  });
  return { remote, links };
}

describe('SharedJobCluster ↔ dispyscheduler link', () => {
  it('sets the computation up with its files, sends jobs with their arguments, and brings the events back', async () => {
    const fake = fakeScheduler();
    const { remote } = connected(fake);
    const { calls, events } = recorder();
    const file = path.join(dir, 'data.txt');
    writeFileSync(file, 'some depends data');
    await remote.addComputation(specWith(events, [{ name: 'data.txt', path: file, size: 17, mode: 0o644 }]));
    expect(fake.added).toHaveLength(1);
    const [added] = fake.added;
    expect(added!.setup.name).toBe('double');
    expect(added!.setup.reentrant).toBe(true);
    expect(added!.setup.maxRetries).toBe(2);
    expect(added!.setup.exclusive).toBe(true);
    expect(added!.nodes).toEqual(['127.0.0.*']);
    expect(added!.files.map((f) => f.name)).toEqual(['data.txt']);
    expect(readFileSync(added!.files[0]!.path, 'utf8')).toBe('some depends data');

    const args = encodeArguments([21]);
    const job = remote.submit({ computeId: 'c0ffee', priority: 5, ref: 'job A', args, pin: { host: '127.0.0.5' } });
    await until(() => fake.submitted.length === 1, 'the job reached the scheduler');
    const [sent] = fake.submitted;
    expect(Buffer.from(sent!.args)).toEqual(Buffer.from(args));
    expect(sent!.priority).toBe(5);
    expect(sent!.pin).toEqual({ host: '127.0.0.5' });

    added!.events.nodeUp(NODE);
    added!.events.jobStarted(sent!.job, NODE);
    added!.events.jobProvisional(sent!.job, Buffer.from('half'), NODE);
    expect(remote.runningOn(NODE.key)).toEqual([]);
    await until(() => calls.length === 3, 'three events');
    expect(remote.runningOn(NODE.key)).toEqual([job]);
    added!.events.jobDone(
      sent!.job,
      { status: 'finished', result: Buffer.from('42'), stdout: 'out', stderr: '', exception: '', startTime: 1, endTime: 2, cpuTime: 0.5 },
      NODE,
    );
    await until(() => calls.length === 4, 'the final reply');
    expect(calls).toEqual([
      ['nodeUp', NODE.key],
      ['jobStarted', 'job A', NODE.key],
      ['jobProvisional', 'job A', 'half', NODE.key],
      ['jobDone', 'job A', 'finished', '42', NODE.key],
    ]);
    expect(remote.nodesOf('c0ffee').map((node) => [node.key, node.cpus, node.totalCpus])).toEqual([[NODE.key, 2, 4]]);
    expect(await remote.setNodeCpus('c0ffee', NODE.key, 1)).toBe(2);

    // A queued job cancelled at the scheduler ends at once, before it ran.
    const queued = remote.submit({ computeId: 'c0ffee', priority: 0, ref: 'job B', args });
    await until(() => fake.submitted.length === 2, 'the second job reached the scheduler');
    expect(remote.cancel(queued)).toBe('sent');
    await until(() => calls.length === 5, 'the cancelled job');
    expect(calls[4]).toEqual(['jobFailed', 'job B', 'cancelled', 'cancelled before it ran', undefined]);

    await remote.close();
    expect(fake.closed).toEqual(['c0ffee']);
    await until(() => fake.ended.length === 1, 'the link ended');
  });

  it('sends per-job files before their job, which the scheduler gets as its files there, removed when the job ends', async () => {
    const fake = fakeScheduler();
    const { remote } = connected(fake);
    const { calls, events } = recorder();
    await remote.addComputation(specWith(events));
    const file = path.join(dir, 'per-job.txt');
    writeFileSync(file, 'for this job only');
    remote.submit({ computeId: 'c0ffee', priority: 0, ref: 'with a file', args: encodeArguments([1]), files: [file] });
    await until(() => fake.submitted.length === 1, 'the job reached the scheduler');
    const [there] = fake.submitted[0]!.files!;
    expect(there).not.toBe(file);
    expect(readFileSync(there!, 'utf8')).toBe('for this job only');
    fake.added[0]!.events.jobFailed(fake.submitted[0]!.job, 'terminated', 'it threw');
    await until(() => calls.length === 1, 'the job ended');
    await until(() => !existsSync(path.dirname(there!)), 'its files removed');
    // A file that cannot be read ends its job, naming it; nothing reaches the scheduler.
    remote.submit({ computeId: 'c0ffee', priority: 0, ref: 'missing', args: encodeArguments([2]), files: [path.join(dir, 'gone.txt')] });
    await until(() => calls.length === 2, 'the job with a missing file ended');
    expect(calls[1]).toEqual([
      'jobFailed',
      'missing',
      'terminated',
      expect.stringContaining('gone.txt could not be sent') as unknown,
      undefined,
    ]);
    expect(fake.submitted).toHaveLength(1);
    await remote.close();
    await until(() => fake.ended.length === 1, 'the link ended');
  });

  it("closes a vanished client's computation at the scheduler", async () => {
    const fake = fakeScheduler();
    const { remote, links } = connected(fake);
    await remote.addComputation(specWith(recorder().events));
    remote.submit({ computeId: 'c0ffee', priority: 0, ref: 'job', args: encodeArguments([1]) });
    await until(() => fake.submitted.length === 1, 'the job reached the scheduler');
    // The client's process dies: its end of the connection is gone.
    remote.setActive(false);
    links[0]!['channel'].socket.destroy();
    await until(() => fake.ended.length === 1, 'the link ended');
    expect(fake.closed).toEqual(['c0ffee']);
    await remote.close();
  });

  it('when the scheduler goes, ends the jobs not done Cancelled and the nodes down; the next job sets the computation up again', async () => {
    const fake = fakeScheduler();
    const { remote, links } = connected(fake);
    const { calls, events } = recorder();
    await remote.addComputation(specWith(events));
    const onNode = remote.submit({ computeId: 'c0ffee', priority: 0, ref: 'on a node', args: encodeArguments([1]) });
    remote.submit({ computeId: 'c0ffee', priority: 0, ref: 'queued', args: encodeArguments([2]) });
    await until(() => fake.submitted.length === 2, 'the jobs reached the scheduler');
    fake.added[0]!.events.nodeUp(NODE);
    fake.added[0]!.events.jobStarted(fake.submitted[0]!.job, NODE);
    await until(() => remote.runningOn(NODE.key).length === 1, 'the job started');
    expect(remote.runningOn(NODE.key)).toEqual([onNode]);

    await links[0]!.shutdown(new Error('dispyscheduler is stopping'));
    await until(() => calls.length === 4, 'the loss reported');
    expect(calls.slice(2)).toEqual([
      ['nodeDown', NODE.key, ['on a node'], expect.stringMatching(/^lost the connection to dispyscheduler 127.0.0.1:51349/) as unknown],
      ['jobFailed', 'queued', 'cancelled', expect.stringMatching(/it closed the computation$/) as unknown, undefined],
    ]);

    remote.submit({ computeId: 'c0ffee', priority: 0, ref: 'after', args: encodeArguments([3]) });
    await until(() => fake.submitted.length === 3, 'the new job reached the new connection');
    expect(fake.added).toHaveLength(2);
    expect(links).toHaveLength(2);
    await remote.close();
    await until(() => fake.ended.length === 2, 'the second link ended');
  });

  it('a connection lost before its SetupReply: the computation is set up again on a new one, and its jobs go there', async () => {
    const fake = fakeScheduler();
    const { remote, links } = connected(fake);
    const addComputation = fake.context.addComputation;
    let cut = false;
    fake.context.addComputation = (...args) => {
      // The first Setup reaches the scheduler, and the connection goes before its answer.
      if (!cut) {
        cut = true;
        void links[0]!.shutdown(new Error('cut before the SetupReply'));
      }
      return addComputation(...args);
    };
    const adding = remote.addComputation(specWith(recorder().events));
    await until(() => cut && fake.ended.length === 1, 'the first connection cut');
    await vi.advanceTimersByTimeAsync(500);
    await adding;
    expect(links).toHaveLength(2);
    expect(fake.added).toHaveLength(2);
    remote.submit({ computeId: 'c0ffee', priority: 0, ref: 'job', args: encodeArguments([1]) });
    await until(() => fake.submitted.length === 1, 'the job reached the second connection');
    await remote.close();
    await until(() => fake.ended.length === 2, 'the second link ended');
  });

  it('close() while the scheduler is unreachable waits 5 s for it, not its whole grace period, then leaves the computation to it', async () => {
    const fake = fakeScheduler();
    // The scheduler keeps a lost client's computation for 60 s: the client reconnects meanwhile.
    (fake.context as { zombieSeconds: number }).zombieSeconds = 60;
    const links: ClientLink[] = [];
    let reachable = true;
    const remote = new RemoteScheduler<string>({
      host: '127.0.0.1',
      port: 51349,
      secret: SECRET,
      clientName: 'test client',
      logger,
      connect: () => {
        const { client, server } = socketPair();
        if (reachable) links.push(new ClientLink(server.asSocket(), fake.context));
        else process.nextTick(() => server.asSocket().destroy());
        return client.asSocket();
      },
    });
    await remote.addComputation(specWith(recorder().events));
    reachable = false;
    await links[0]!.shutdown(new Error('the network is gone'));
    let closed = false;
    const closing = remote.close().then(() => (closed = true));
    await vi.advanceTimersByTimeAsync(4_000);
    expect(closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1_000);
    await closing;
    expect(closed).toBe(true);
    expect(links).toHaveLength(1);
  });

  it('a scheduler that refuses the computation is not asked again', async () => {
    const fake = fakeScheduler();
    const { remote, links } = connected(fake);
    fake.context.addComputation = () => Promise.reject(new Error('no room'));
    const error = await remote.addComputation(specWith(recorder().events)).catch((reason: unknown) => reason);
    expect((error as Error).message).toMatch(/refused the computation: no room/);
    expect(links).toHaveLength(1);
    await remote.close();
    await until(() => fake.ended.length === 1, 'the link ended');
  });

  it('refuses a wrong cluster secret with an AuthError that says so, and adds nothing', async () => {
    const fake = fakeScheduler();
    const { remote } = connected(fake, 'not the cluster secret');
    const error = await remote.addComputation(specWith(recorder().events)).catch((reason: unknown) => reason);
    expect(AuthError.isInstance((error as Error).cause)).toBe(true);
    expect((error as Error).message).toBe(
      "could not use dispyscheduler: dispyscheduler 127.0.0.1:51349 refused this client: the client's secret does not match the scheduler's",
    );
    expect(fake.added).toEqual([]);
    await until(() => fake.ended.length === 1, 'the link ended');
    await remote.close();
  });
});
