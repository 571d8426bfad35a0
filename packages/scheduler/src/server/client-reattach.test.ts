import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { dispy, encodeArguments, type Frame } from '@dispy/protocol';
import { SAVED_REPLIES_DIR, createLogger } from '@dispy/protocol/internal';
import { socketPair } from '../../../../testing/socket-pair.js';
import { NodeConnection } from '../session/node-connection.js';
import type { ComputationEvents, ComputationSpec, NodeAllocator, NodeInfo, SchedulerJob } from '../cluster/types.js';
import { ClientLink, type ClientLinkContext } from './client-link.js';
import { KeptClientComputations, type ClientJobRef } from './kept-client-computations.js';
import { RemoteScheduler } from './remote-scheduler.js';

/*
 * A SharedJobCluster's link to dispyscheduler cut and restored (RemoteScheduler reconnects and
 * sends Reattach; the scheduler's KeptClientComputations kept the computation and its replies),
 * and a client gone for good (its grace period passes: the computation is closed, its replies
 * kept for recovery), over in-memory sockets with fake timers and a fake JobScheduler.
 */

const SECRET = 'the cluster secret of the reattach tests';
const logger = createLogger('test', 'silent');
const GRACE_MS = 60_000;
let dir: string;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-client-reattach-'));
});

afterEach(() => {
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
  rmSync(dir, { recursive: true, force: true });
});

async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Waits for `condition` (sockets and file system at work), at most 10 s of real time. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!condition() && performance.now() < deadline) await settle(1);
  if (!condition()) throw new Error(`never: ${what}`);
}

/** Advances the fake clock by `ms` in steps, letting I/O run between them. */
async function pass(ms: number, step = 250): Promise<void> {
  for (let done = 0; done < ms; done += step) {
    await vi.advanceTimersByTimeAsync(step);
    await settle(5);
  }
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

/** The scheduler behind the links, with the registry that keeps computations of lost clients. */
function fakeScheduler(registry?: KeptClientComputations) {
  const added: ComputationEvents<ClientJobRef>[] = [];
  const submitted: SchedulerJob<ClientJobRef>[] = [];
  const closed: string[] = [];
  const links: ClientLink[] = [];
  let uid = 100;
  const kept =
    registry ??
    new KeptClientComputations({
      dir,
      graceMs: GRACE_MS,
      zombieMs: 3_600_000,
      logger,
      closeComputation: (computeId) => {
        closed.push(computeId);
        return Promise.resolve();
      },
    });
  const context: ClientLinkContext = {
    secret: SECRET,
    logger,
    heartbeatSeconds: 10,
    zombieSeconds: kept.graceSeconds,
    name: 'dispyscheduler@test',
    fileDir: dir,
    maxFileSize: 0,
    kept,
    nodeOps: {
      sendFile: () => Promise.resolve(false),
      closeNode: () => Promise.resolve(false),
      deallocate: () => false,
      allocate: () => Promise.resolve(),
      setNodeCpus: () => Promise.resolve({ cpus: 2, unchanged: true }),
      jobFileDone: () => undefined,
    },
    addComputation: (_setup, _files, _nodes, events) => {
      added.push(events);
      return Promise.resolve();
    },
    submit: (request) => {
      const job = { uid: uid++, computeId: request.computeId, priority: request.priority, ref: request.ref };
      submitted.push(job);
      return job;
    },
    cancel: () => 'sent',
    closeComputation: (computeId) => {
      closed.push(computeId);
      return Promise.resolve();
    },
    onEnd: () => undefined,
  };
  /** A new connection to the scheduler: the client's end. */
  const connect = () => {
    const { client, server } = socketPair();
    links.push(new ClientLink(server.asSocket(), context));
    return client.asSocket();
  };
  return { kept, added, submitted, closed, links, connect };
}

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
    jobFailed: (job, status, why) => calls.push(['jobFailed', job.ref, status, why]),
    jobRequeued: (job, from) => calls.push(['jobRequeued', job.ref, from.key]),
  };
  return { calls, events };
}

function spec(events: ComputationEvents<string>): ComputationSpec<string> {
  const allocator: NodeAllocator = { host: '127.0.0.*', isWildcard: true, resolved: new Set(), allocate: () => 1 };
  return {
    computeId: 'c0ffee',
    name: 'double',
    kind: dispy.ComputationKind.FUNCTION,
    source: '(n) => n * 2',
    definitions: [],
    files: [],
    destPath: '',
    cleanup: true,
    allocators: [allocator],
    reentrant: false,
    maxRetries: 0,
    exclusive: false,
    pulseInterval: 0,
    owner: undefined,
    events,
  };
}

const finished = (result: string) =>
  ({
    status: 'finished',
    result: Buffer.from(result),
    stdout: '',
    stderr: '',
    exception: '',
    startTime: 1,
    endTime: 2,
    cpuTime: 0,
  }) as const;

const savedFolder = () => path.join(dir, SAVED_REPLIES_DIR, 'c0ffee');
const savedReplies = () => (existsSync(savedFolder()) ? readdirSync(savedFolder()).filter((name) => name.endsWith('.reply')) : []);

describe('dispyscheduler keeps the computation of a client whose link is lost', () => {
  it('a cut link and a reconnect lose nothing: the reply that came meanwhile arrives once, a job submitted meanwhile goes after', async () => {
    const fake = fakeScheduler();
    const remote = new RemoteScheduler<string>({
      host: '127.0.0.1',
      port: 51349,
      secret: SECRET,
      clientName: 'test',
      logger,
      connect: fake.connect,
    });
    remote.setActive(true);
    const { calls, events } = recorder();
    await remote.addComputation(spec(events));
    remote.submit({ computeId: 'c0ffee', priority: 0, ref: 'A', args: encodeArguments([1]) });
    remote.submit({ computeId: 'c0ffee', priority: 0, ref: 'B', args: encodeArguments([2]) });
    await until(() => fake.submitted.length === 2, 'both jobs reached the scheduler');
    const [events0] = fake.added;
    events0!.nodeUp(NODE);
    for (const job of fake.submitted) events0!.jobStarted(job, NODE);
    await until(() => calls.length === 3, 'the jobs started');

    // The link is cut: the scheduler keeps the computation, its jobs go on.
    fake.links[0]!['channel'].socket.destroy();
    await until(() => fake.links[0]!.isAuthenticated === false, 'the scheduler saw the loss');
    expect(fake.closed).toEqual([]);
    events0!.jobDone(fake.submitted[0]!, finished('2'), NODE);
    await until(() => savedReplies().length === 1, "A's reply saved to disk while the client is away");
    remote.submit({ computeId: 'c0ffee', priority: 0, ref: 'C', args: encodeArguments([3]) });

    // The client reconnects (0.25 s later) and takes the computation back.
    await pass(500);
    await until(() => calls.some((call) => call[0] === 'jobDone' && call[1] === 'A'), "A's reply resent");
    await until(() => fake.submitted.length === 3, 'C sent on the new connection');
    expect(fake.links).toHaveLength(2);
    expect(fake.added).toHaveLength(1);
    events0!.jobDone(fake.submitted[1]!, finished('4'), NODE);
    events0!.jobDone(fake.submitted[2]!, finished('6'), NODE);
    await until(() => calls.filter((call) => call[0] === 'jobDone').length === 3, 'B and C done');
    expect(calls.filter((call) => call[0] === 'jobDone').map((call) => [call[1], call[3]])).toEqual([
      ['A', '2'],
      ['B', '4'],
      ['C', '6'],
    ]);
    // Acknowledged: the saved reply is gone.
    await until(() => savedReplies().length === 0, 'the saved reply deleted once acknowledged');
    expect(calls.filter((call) => call[0] === 'jobFailed' || call[0] === 'nodeDown')).toEqual([]);

    await remote.close();
    expect(fake.closed).toEqual(['c0ffee']);
    await until(() => fake.links[1]!.isAuthenticated === false, 'the scheduler saw the client go');
    await fake.kept.close();
  });

  it('a client not back within the grace period: its computation is closed, its jobs not done Terminated, every reply kept for recovery', async () => {
    const fake = fakeScheduler();
    let connections = 0;
    const remote = new RemoteScheduler<string>({
      host: '127.0.0.1',
      port: 51349,
      secret: SECRET,
      clientName: 'test',
      logger,
      // The first connection works; the scheduler is out of reach afterwards.
      connect: () => {
        if (connections++ === 0) return fake.connect();
        const { client } = socketPair();
        client.destroy(new Error('connect ECONNREFUSED'));
        return client.asSocket();
      },
    });
    remote.setActive(true);
    const { calls, events } = recorder();
    await remote.addComputation(spec(events));
    for (const ref of ['A', 'B']) remote.submit({ computeId: 'c0ffee', priority: 0, ref, args: encodeArguments([1]) });
    await until(() => fake.submitted.length === 2, 'both jobs reached the scheduler');
    fake.links[0]!['channel'].socket.destroy();
    await until(() => fake.links[0]!.isAuthenticated === false, 'the scheduler saw the loss');
    fake.added[0]!.jobDone(fake.submitted[0]!, finished('done while away'), NODE);

    await pass(GRACE_MS + 1000, 1000);
    // The client gave up: its jobs ended Cancelled; the scheduler closed the computation.
    await until(() => calls.filter((call) => call[0] === 'jobFailed').length === 2, 'the client gave the jobs up');
    expect(calls[0]).toEqual(['jobFailed', 'A', 'cancelled', expect.stringMatching(/not back within its grace period of 60 s/) as unknown]);
    expect(fake.closed).toEqual(['c0ffee']);
    await until(() => savedReplies().length === 2, "B's Terminated reply saved beside A's");

    // recoverJobs' way: Reattach on a new connection takes the replies.
    const replies: dispy.JobReply[] = [];
    const connection = new NodeConnection({
      host: '127.0.0.1',
      port: 51349,
      secret: SECRET,
      clientName: 'recovery',
      onFrame: (frame: Frame) => {
        if (frame.kind === 'jobReply') replies.push(frame.jobReply as dispy.JobReply);
      },
      onClose: () => undefined,
      connect: fake.connect,
    });
    await connection.open();
    const answer = await connection.reattach('c0ffee');
    expect([answer.ok, answer.live, answer.heldJobIds, answer.savedReplies]).toEqual([true, false, [], 2]);
    await until(() => replies.length === 2, 'the kept replies resent');
    expect(replies.map((reply) => [Number(reply.jobId), reply.status, reply.exception])).toEqual([
      [1, dispy.JobStatus.FINISHED, ''],
      [2, dispy.JobStatus.TERMINATED, expect.stringMatching(/away longer than dispyscheduler's grace period \(60 s\)/) as unknown],
    ]);
    await connection.closeComputation('c0ffee', true);
    await until(() => !existsSync(savedFolder()), 'the replies forgotten once the computation is closed');
    expect(fake.kept.get('c0ffee')).toBeUndefined();
    connection.destroy();
    await remote.close();
    await fake.kept.close();
    await settle();
  });

  it('replies kept for a client gone survive a restart of the scheduler: the next run loads them, and a Reattach gets them', async () => {
    const fake = fakeScheduler();
    let connections = 0;
    const remote = new RemoteScheduler<string>({
      host: '127.0.0.1',
      port: 51349,
      secret: SECRET,
      clientName: 'test',
      logger,
      connect: () => {
        if (connections++ === 0) return fake.connect();
        const { client } = socketPair();
        client.destroy(new Error('connect ECONNREFUSED'));
        return client.asSocket();
      },
    });
    remote.setActive(true);
    await remote.addComputation(spec(recorder().events));
    remote.submit({ computeId: 'c0ffee', priority: 0, ref: 'A', args: encodeArguments([1]) });
    await until(() => fake.submitted.length === 1, 'the job reached the scheduler');
    fake.links[0]!['channel'].socket.destroy();
    await until(() => fake.links[0]!.isAuthenticated === false, 'the scheduler saw the loss');
    fake.added[0]!.jobDone(fake.submitted[0]!, finished('kept across the restart'), NODE);
    await until(() => savedReplies().length === 1, 'the reply saved');
    // The scheduler stops (its replies stay on disk) and starts again on the same directory.
    await fake.kept.close();
    const next = new KeptClientComputations({
      dir,
      graceMs: GRACE_MS,
      zombieMs: 3_600_000,
      logger,
      closeComputation: () => Promise.resolve(),
    });
    await next.load();
    expect(next.get('c0ffee')).toBeDefined();
    const restarted = fakeScheduler(next);
    const replies: dispy.JobReply[] = [];
    const connection = new NodeConnection({
      host: '127.0.0.1',
      port: 51349,
      secret: SECRET,
      clientName: 'recovery',
      onFrame: (frame: Frame) => {
        if (frame.kind === 'jobReply') replies.push(frame.jobReply as dispy.JobReply);
      },
      onClose: () => undefined,
      connect: restarted.connect,
    });
    await connection.open();
    const answer = await connection.reattach('c0ffee');
    expect([answer.ok, answer.live, answer.savedReplies]).toEqual([true, false, 1]);
    await until(() => replies.length === 1, 'the saved reply resent');
    expect(Buffer.from(replies[0]!.result).toString()).toBe('kept across the restart');
    await connection.closeComputation('c0ffee', true);
    await until(() => !existsSync(savedFolder()), 'the replies forgotten once collected');
    connection.destroy();
    // The client gives up when the grace period it was told has passed.
    await pass(GRACE_MS + 1000, 1000);
    await remote.close();
    await next.close();
    await settle();
  });
});
