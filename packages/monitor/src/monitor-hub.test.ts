import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { WebSocket } from 'ws';
import { createLogger } from '@dispy/protocol/internal';
import { FakeSource } from './fake-source.test-helper.js';
import { MonitorHub, PUSH_INTERVAL_MS, type ServerMessage } from './monitor-hub.js';

/** A browser's socket as the hub uses it: what it was sent, in order. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  readonly sent: ServerMessage[] = [];
  send(data: string, done?: (error?: Error) => void): void {
    this.sent.push(JSON.parse(data) as ServerMessage);
    done?.();
  }
  close(): void {
    this.readyState = 3;
    this.emit('close');
  }
  terminate(): void {
    this.close();
  }
  /** The browser says something. */
  say(text: string): void {
    this.emit('message', Buffer.from(text), false);
  }
}

const logger = createLogger('test', 'silent');

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

function attach(hub: MonitorHub): FakeSocket {
  const socket = new FakeSocket();
  hub.attach(socket as unknown as WebSocket);
  return socket;
}

describe('MonitorHub', () => {
  it('plans no push while no browser is connected, and leaves no timer once the last one goes', () => {
    const source = new FakeSource();
    const hub = new MonitorHub(false, logger);
    hub.add(source);
    source.change((state) => (state.jobs.submitted = 1));
    expect(vi.getTimerCount()).toBe(0);
    const socket = attach(hub);
    expect(socket.sent).toMatchObject([{ type: 'state', clusters: [{ snapshot: { jobs: { submitted: 1 } } }] }]);
    socket.close();
    expect(vi.getTimerCount()).toBe(0);
    hub.close();
  });

  it('sends many changes as one push, then waits PUSH_INTERVAL_MS before the next', () => {
    const source = new FakeSource();
    const hub = new MonitorHub(false, logger);
    hub.add(source);
    const socket = attach(hub);
    for (let i = 1; i <= 100; i++) source.change((state) => (state.jobs.finished = i));
    vi.advanceTimersByTime(0);
    expect(socket.sent).toHaveLength(2);
    expect(socket.sent[1]).toMatchObject({ type: 'update', clusters: [{ snapshot: { jobs: { finished: 100 } } }] });
    source.change((state) => (state.jobs.finished = 101));
    vi.advanceTimersByTime(PUSH_INTERVAL_MS - 1);
    expect(socket.sent).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(socket.sent).toHaveLength(3);
    hub.close();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('gives each browser the jobs of the node it shows, and closes a stream that sends anything else', () => {
    const source = new FakeSource();
    source.jobs = [{ key: '7', id: 'seven', startTime: 1 }];
    const hub = new MonitorHub(false, logger);
    hub.add(source);
    const watching = attach(hub);
    const other = attach(hub);
    watching.say(JSON.stringify({ type: 'watch', cluster: 'c1', node: '127.0.0.1:9' }));
    expect(watching.sent.at(-1)).toMatchObject({ nodeJobs: { node: '127.0.0.1:9', jobs: [{ key: '7' }] } });
    source.change(() => {});
    vi.advanceTimersByTime(PUSH_INTERVAL_MS);
    expect(watching.sent.at(-1)).toMatchObject({ type: 'update', nodeJobs: { jobs: [{ key: '7' }] } });
    expect(other.sent.at(-1)).toMatchObject({ type: 'update' });
    expect(other.sent.at(-1)).not.toHaveProperty('nodeJobs');
    other.say('<script>');
    expect(other.readyState).toBe(3);
    hub.close();
  });

  it('skips a browser that falls behind, and sends it the whole state once it has caught up', () => {
    const source = new FakeSource();
    const hub = new MonitorHub(false, logger);
    hub.add(source);
    const slow = attach(hub);
    slow.bufferedAmount = 2 << 20;
    source.change((state) => (state.jobs.running = 1));
    vi.advanceTimersByTime(PUSH_INTERVAL_MS);
    expect(slow.sent).toHaveLength(1);
    slow.bufferedAmount = 0;
    source.change((state) => (state.jobs.running = 2));
    vi.advanceTimersByTime(PUSH_INTERVAL_MS);
    expect(slow.sent.at(-1)).toMatchObject({ type: 'state', clusters: [{ snapshot: { jobs: { running: 2 } } }] });
    hub.close();
  });

  it('goes on when a cluster cannot be read', () => {
    const broken = new FakeSource('broken');
    broken.snapshot = () => {
      throw new Error('gone');
    };
    const hub = new MonitorHub(false, logger);
    hub.add(broken);
    hub.add(new FakeSource('fine'));
    const socket = attach(hub);
    expect(socket.sent[0]).toMatchObject({ type: 'state', clusters: [{ snapshot: { name: 'fine' } }] });
    hub.close();
  });

  it('answers no more watch messages of a browser that does not read, until it has caught up (then the whole state)', async () => {
    const source = new FakeSource();
    const hub = new MonitorHub(false, logger);
    hub.add(source);
    const socket = attach(hub);
    socket.bufferedAmount = 2 * 1024 * 1024;
    const before = socket.sent.length;
    for (let i = 0; i < 100; i++) socket.say(JSON.stringify({ type: 'watch' }));
    expect(socket.sent.length).toBe(before);
    socket.bufferedAmount = 0;
    source.change((state) => (state.jobs.submitted = 1));
    await vi.advanceTimersByTimeAsync(PUSH_INTERVAL_MS);
    expect(socket.sent.at(-1)!.type).toBe('state');
    hub.close();
  });

  it('sends node jobs without their arguments unless this monitor shows them', () => {
    const source = new FakeSource();
    source.jobs = [{ id: '1', key: '1', startTime: 0, args: 'secret argument' }];
    const hub = new MonitorHub(false, logger);
    hub.add(source);
    const socket = attach(hub);
    const id = (socket.sent[0] as { clusters: { id: string }[] }).clusters[0]!.id;
    socket.say(JSON.stringify({ type: 'watch', cluster: id, node: 'n' }));
    expect(JSON.stringify(socket.sent.at(-1))).not.toContain('secret argument');
    hub.close();
  });
});
