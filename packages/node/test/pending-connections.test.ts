import { describe, expect, it } from 'vitest';
import { PendingConnections } from '../src/session/pending-connections.js';

describe('PendingConnections', () => {
  it('refuses a connection over its address cap, and has room again when one authenticates', () => {
    const pending = new PendingConnections<string>({ total: 10, perAddress: 2 }, () => undefined);
    expect(pending.admit('a1', '127.0.80.1')).toBe('admitted');
    expect(pending.admit('a2', '127.0.80.1')).toBe('admitted');
    expect(pending.hasRoomFor('127.0.80.1')).toBe(false);
    expect(pending.hasRoomFor('127.0.80.2')).toBe(true);
    pending.remove('a1');
    expect(pending.hasRoomFor('127.0.80.1')).toBe(true);
  });

  it('evicts the oldest waiting connection when the total cap is reached', () => {
    const evicted: string[] = [];
    const pending = new PendingConnections<string>({ total: 3, perAddress: 3 }, (connection) => evicted.push(connection));
    pending.admit('c1', '127.0.80.1');
    pending.admit('c2', '127.0.80.2');
    pending.admit('c3', '127.0.80.3');
    pending.remove('c2'); // authenticated: no longer counted, never evicted
    pending.admit('c4', '127.0.80.4');
    expect(evicted).toEqual([]);
    expect(pending.admit('c5', '127.0.80.5')).toBe('evicted');
    expect(pending.admit('c6', '127.0.80.5')).toBe('evicted');
    expect(evicted).toEqual(['c1', 'c3']);
    expect(pending.size).toBe(3);
    expect(pending.hasRoomFor('127.0.80.1')).toBe(true);
  });

  it('forgets a connection removed twice (closed after it authenticated) without miscounting', () => {
    const pending = new PendingConnections<string>({ total: 5, perAddress: 1 }, () => undefined);
    pending.admit('a', '127.0.80.1');
    pending.remove('a');
    pending.remove('a');
    expect(pending.size).toBe(0);
    expect(pending.admit('b', '127.0.80.1')).toBe('admitted');
    expect(pending.hasRoomFor('127.0.80.1')).toBe(false);
  });

  it('hands a slot over with its address and its age (a TLS socket to its session)', () => {
    const evicted: string[] = [];
    const pending = new PendingConnections<string>({ total: 2, perAddress: 2 }, (connection) => evicted.push(connection));
    pending.admit('raw', '127.0.80.1');
    pending.admit('other', '127.0.80.2');
    expect(pending.transfer('raw', 'session')).toBe(true);
    expect(pending.size).toBe(2);
    // The session is as old as its socket: it goes first.
    expect(pending.admit('new', '127.0.80.3')).toBe('evicted');
    expect(evicted).toEqual(['session']);
    expect(pending.hasRoomFor('127.0.80.1')).toBe(true);
    expect(pending.transfer('raw', 'again')).toBe(false);
    expect(pending.transfer('session', 'again')).toBe(false);
    expect(pending.size).toBe(2);
  });
});
