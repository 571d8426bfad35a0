import os from 'node:os';
import { vi, expect } from 'vitest';
import { dispy, type Frame } from '@dispy/protocol';
import { createLogger, type Logger } from '@dispy/protocol/internal';
import { FakeNode } from '../session/fake-node.test-helper.js';
import { JobScheduler } from './job-scheduler.js';
import type { Discovery, JobSchedulerOptions } from './job-scheduler-options.js';
import type { ComputationEvents, ComputationSpec, NodeAllocator, SchedulerJob } from './types.js';

export type Event = [string, ...unknown[]];

/**
 * A JobScheduler whose discovery the test drives and whose nodes are FakeNodes, one per
 * connection: a node reconnected to is a new FakeNode at the same address (`node(host)` is the
 * latest), with the intervals the test chose; `refuse(host)` makes the next connections fail as a
 * node that is down would. Logs are recorded.
 */
export function schedulerHarness(
  more: Partial<JobSchedulerOptions> & { intervals?: { heartbeatInterval?: number; zombieInterval?: number } } = {},
) {
  const { intervals, ...options } = more;
  const connections = new Map<string, FakeNode[]>();
  const refused = new Set<string>();
  let announce!: (reply: dispy.DiscoveryReply, address: string) => void;
  /** Hosts discovery was told to ping again (`found(host, false)`), in order. */
  const pingedAgain: string[] = [];
  const discovery: Discovery = {
    start: async () => undefined,
    addHost: () => undefined,
    enableBroadcast: () => undefined,
    found: (host, isFound) => {
      if (!isFound) pingedAgain.push(host);
    },
    pingNow: () => undefined,
    setActive: () => undefined,
    close: () => undefined,
  };
  const logs: Array<[level: string, message: string]> = [];
  const base = createLogger('test', (process.env.TEST_LOG as 'debug') ?? 'silent');
  const logger: Logger = {
    ...base,
    debug: (message: string) => (logs.push(['debug', message]), base.debug(message)),
    info: (message: string) => (logs.push(['info', message]), base.info(message)),
    warn: (message: string) => (logs.push(['warn', message]), base.warn(message)),
    error: (message: string) => (logs.push(['error', message]), base.error(message)),
  };
  const scheduler = new JobScheduler<string, 'owner', NodeAllocator<'owner'>>({
    secret: 'sesame',
    port: 0,
    portIsDefault: true,
    nodePort: 51348,
    clientName: 'test',
    logger,
    fileDir: os.tmpdir(),
    ...options,
    discovery: (onReply) => {
      announce = onReply;
      return discovery;
    },
    connect: (host, port) => {
      const node = new FakeNode(options.secret ?? 'sesame', intervals);
      const key = `${host}:${port}`;
      connections.set(key, [...(connections.get(key) ?? []), node]);
      if (refused.has(host)) node.clientEnd.destroy(Object.assign(new Error(`connect ECONNREFUSED ${key}`), { code: 'ECONNREFUSED' }));
      return node.clientEnd.asSocket();
    },
  });
  const events: Event[] = [];
  const record = new Proxy({} as ComputationEvents<string>, {
    get:
      (_target, name: string) =>
      (...args: unknown[]) =>
        events.push([name, ...args]),
  });
  const allocator: NodeAllocator<'owner'> = {
    host: '*',
    isWildcard: true,
    resolved: new Set(),
    allocate: (_owner, _ip, _name, cpus) => cpus,
  };
  const spec: ComputationSpec<string, 'owner'> = {
    computeId: 'c1',
    name: 'comp',
    kind: dispy.ComputationKind.FUNCTION,
    source: 'x => x',
    definitions: [],
    files: [],
    destPath: '',
    cleanup: true,
    allocators: [allocator],
    reentrant: false,
    pulseInterval: 0,
    owner: 'owner',
    events: record,
  };
  const key = (host: string) => `${host}:51348`;
  /** The latest connection to the node at `host`. */
  const node = (host: string): FakeNode => connections.get(key(host))!.at(-1)!;
  /** How many connections were made to the node at `host`. */
  const connectionCount = (host: string): number => connections.get(key(host))?.length ?? 0;
  /** A node at `host` answers discovery (from `address`); resolves with its new connection. */
  async function discover(host: string, cpus = 1, address = host): Promise<FakeNode> {
    const before = connectionCount(host);
    announce(
      dispy.DiscoveryReply.create({ tcpHost: host, tcpPort: 51348, name: `node-${host}`, cpus, totalCpus: cpus, platform: 'test' }),
      address,
    );
    await vi.waitFor(() => expect(connectionCount(host)).toBeGreaterThan(before));
    return node(host);
  }
  /**
   * A node at `host` answers discovery (from `address`: another address than the one it takes
   * connections on, as a node with `--ext-host` does); resolves with it once the computation is set up there.
   */
  async function nodeUp(host: string, cpus = 1, address = host): Promise<FakeNode> {
    const fake = await discover(host, cpus, address);
    const setup = await fake.next('setup');
    fake.send({ setupReply: { computeId: 'c1', ok: true, cpus }, requestId: setup.requestId });
    await vi.waitFor(() => expect(scheduler.nodesOf('c1').some((info) => info.host === host)).toBe(true));
    return fake;
  }
  const reply = (to: FakeNode, jobId: number, status = dispy.JobStatus.FINISHED) =>
    to.send({ jobReply: { computeId: 'c1', jobId, status, startTime: 1, endTime: 2 } });
  const submit = (ref: string, extra: Partial<Parameters<typeof scheduler.submit>[0]> = {}): SchedulerJob<string> =>
    scheduler.submit({ computeId: 'c1', priority: 0, ref, args: new Uint8Array([1]), ...extra });
  const named = (name: string) => events.filter(([event]) => event === name);
  /** Job ids of the Job frames a connection received, in order. */
  const jobIds = (frames: Frame[]) => frames.filter((frame) => frame.kind === 'job').map((frame) => Number(frame.job!.jobId));
  return {
    scheduler,
    spec,
    events,
    logs,
    named,
    discover,
    nodeUp,
    node,
    connectionCount,
    pingedAgain,
    refuse: (host: string) => refused.add(host),
    accept: (host: string) => refused.delete(host),
    reply,
    submit,
    jobIds,
  };
}
