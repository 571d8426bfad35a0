/*
 * For unit tests of sessions: the client's end of an in-memory connection, which records every
 * frame the node sends and waits for them by event (never by time, so fake timers may run).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { FramedSocket, PROTOCOL_VERSION, clientProof, newNonce, nodeProof, type Frame, type FrameInit } from '@dispy/protocol';
import { createLogger } from '@dispy/protocol/internal';
import type { MemorySocket } from '../../../testing/socket-pair.js';
import type { NodeContext } from '../src/session/node-context.js';
import { NodeComputations } from '../src/session/node-computations.js';
import { CpuSlots } from '../src/execution/cpu-slots.js';
import type { FrameKind } from '@dispy/protocol';

export class SessionClient {
  readonly channel: FramedSocket;
  /** Every frame received, in order. */
  readonly frames: Frame[] = [];
  private readonly taken = new Set<Frame>();
  private readonly waiters = new Set<{ match: (frame: Frame) => boolean; resolve: (frame: Frame) => void }>();
  private resolveClosed!: (error: Error | undefined) => void;
  /** Resolves when the node has closed the connection (with why, when it was not a clean end). */
  readonly closed = new Promise<Error | undefined>((resolve) => (this.resolveClosed = resolve));
  isClosed = false;

  /** The client's end of an in-memory connection, or a real socket connected to a dispynode. */
  constructor(socket: MemorySocket | Socket) {
    this.channel = new FramedSocket('asSocket' in socket ? socket.asSocket() : socket, {
      onFrame: (frame) => {
        this.frames.push(frame);
        for (const waiter of this.waiters) {
          if (!waiter.match(frame)) continue;
          this.waiters.delete(waiter);
          this.taken.add(frame);
          waiter.resolve(frame);
          return;
        }
      },
      onClose: (error) => {
        this.isClosed = true;
        this.resolveClosed(error);
      },
    });
  }

  send(frame: FrameInit, attachment?: Uint8Array): void {
    this.channel.send(frame, attachment);
  }

  /** The first frame of `kind` (matching `where`) not returned before: one received already, or the next. */
  next(kind: FrameKind, where: (frame: Frame) => boolean = () => true): Promise<Frame> {
    const match = (frame: Frame) => frame.kind === kind && where(frame);
    const arrived = this.frames.find((frame) => !this.taken.has(frame) && match(frame));
    if (arrived) {
      this.taken.add(arrived);
      return Promise.resolve(arrived);
    }
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve };
      this.waiters.add(waiter);
      void this.closed.then(() => {
        if (!this.waiters.delete(waiter)) return;
        reject(new Error(`the connection closed before a ${kind} frame arrived; got ${this.frames.map((f) => f.kind).join(', ')}`));
      });
    });
  }

  /** Answers Hello with an Auth proving `secret`; resolves with the node's AuthResult. */
  async authenticate(secret: string, version = PROTOCOL_VERSION): Promise<{ result: Frame; proofOk: boolean }> {
    const hello = this.frames.find((frame) => frame.kind === 'hello') ?? (await this.next('hello'));
    const nonce = newNonce();
    this.send({ auth: { version, nonce, mac: clientProof(secret, hello.hello!.nonce!, nonce), clientName: 'test client' } });
    const result = await this.next('authResult');
    const proofOk = Buffer.from(result.authResult!.mac ?? []).equals(nodeProof(secret, nonce, hello.hello!.nonce!));
    return { result, proofOk };
  }
}

/**
 * A node as a session sees it, with a fresh directory and its own registry of computations;
 * every hook is recorded. `close()` stops what the registry keeps (its timers included).
 */
export function fakeNode(overrides: Partial<NodeContext<unknown>> = {}): NodeContext<unknown> & {
  calls: string[];
  cpus: number;
  /** The session holding the node now. */
  readonly owner: unknown;
  close(): Promise<void>;
  dispose(): void;
} {
  const destPathPrefix = mkdtempSync(path.join(os.tmpdir(), 'dispy-session-test-'));
  let owner: unknown;
  const calls: string[] = [];
  const logger = createLogger('test node', 'silent');
  const zombieIntervalMs = overrides.zombieIntervalMs ?? 60_000;
  const release = (session: unknown): void => {
    calls.push('release');
    if (owner !== session) return;
    if ((session as { holdsComputations?: boolean }).holdsComputations || computations.holdsJobs(session)) return;
    owner = undefined;
  };
  const computations = new NodeComputations({ destPathPrefix, zombieIntervalMs, logger, release });
  return {
    name: 'test-node',
    secret: 'sesame',
    cpus: 2,
    destPathPrefix,
    logger,
    maxFileSize: 1024 * 1024,
    zombieIntervalMs,
    heartbeatIntervalMs: 10_000,
    computations,
    get owner() {
      return owner;
    },
    calls,
    authenticated: () => void calls.push('authenticated'),
    requestShutdown: () => void calls.push('requestShutdown'),
    claim: (session, from) => {
      calls.push('claim');
      if (owner && owner !== session && !(from !== undefined && owner === from)) return false;
      const fresh = owner === undefined;
      owner = session;
      if (from !== undefined) computations.transferOwner(from, session);
      if (fresh) computations.closeIdleDetached(session);
      return true;
    },
    slots: new CpuSlots(2),
    admit: (session, computeId, exclusive) => {
      calls.push('admit');
      if (owner && owner !== session) return 'another client holds the node';
      owner = session;
      // As the node does: computations left idle by clients that went away give way to one that wants the node alone.
      if (exclusive) computations.closeIdleDetached(session);
      computations.reserve(computeId, exclusive);
      return undefined;
    },
    changed: () => void calls.push('changed'),
    release,
    close: () => computations.close(),
    dispose: () => rmSync(destPathPrefix, { recursive: true, force: true }),
    ...overrides,
  };
}
