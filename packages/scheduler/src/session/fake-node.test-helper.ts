import {
  FramedSocket,
  PROTOCOL_VERSION,
  clientProof,
  macEquals,
  newNonce,
  nodeProof,
  type Frame,
  type FrameInit,
  type dispy,
} from '@dispy/protocol';
import { socketPair, type MemorySocket } from '../../../../testing/socket-pair.js';

/**
 * A scripted node at the other end of an in-memory socket: it speaks the handshake for real
 * (hello, proof check, proof back), then records every frame the client sends and lets the test
 * answer each as it likes (with or without request ids, in any order).
 */
export class FakeNode {
  readonly clientEnd: MemorySocket;
  readonly channel: FramedSocket;
  /** Frames received after authentication, in order. */
  readonly frames: Frame[] = [];
  private readonly nonce = newNonce();
  private authenticated = false;
  private waiters: Array<{ kind: string; resolve: (frame: Frame) => void }> = [];
  /** Answer Close frames at once. */
  answerClose = true;
  /**
   * What its AuthResult says: heartbeat and zombie intervals in seconds. By default a heartbeat
   * long enough that no test's timers reach the link timeout (a real node would pulse), and no
   * zombie interval (the node keeps nothing of a client that is gone: no reconnecting).
   */
  readonly intervals: { heartbeatInterval: number; zombieInterval: number };

  constructor(
    readonly secret = 'sesame',
    intervals: { heartbeatInterval?: number; zombieInterval?: number } = {},
  ) {
    this.intervals = { heartbeatInterval: intervals.heartbeatInterval ?? 86_400, zombieInterval: intervals.zombieInterval ?? 0 };
    const { client, server } = socketPair();
    this.clientEnd = client;
    this.channel = new FramedSocket(server.asSocket(), {
      onFrame: (frame) => this.onFrame(frame),
      onClose: () => undefined,
    });
    this.channel.send({ hello: { version: PROTOCOL_VERSION, nonce: this.nonce } });
  }

  /** Resolves with the next frame of this kind from the client (one already received counts). */
  next(kind: NonNullable<Frame['kind']>): Promise<Frame> {
    const index = this.frames.findIndex((frame) => frame.kind === kind);
    if (index >= 0) return Promise.resolve(this.frames.splice(index, 1)[0]!);
    return new Promise((resolve) => this.waiters.push({ kind, resolve }));
  }

  send(frame: FrameInit, attachment?: Uint8Array): void {
    this.channel.send(frame, attachment);
  }

  /** Hangs up, as a node that dies. */
  vanish(): void {
    this.channel.destroy();
  }

  private onFrame(frame: Frame): void {
    if (!this.authenticated) {
      const auth = frame.auth as dispy.Auth;
      if (!macEquals(clientProof(this.secret, this.nonce, auth.nonce), auth.mac)) {
        this.channel.end({ authResult: { ok: false, reason: 'wrong secret' } });
        return;
      }
      this.authenticated = true;
      this.channel.send({ authResult: { ok: true, mac: nodeProof(this.secret, auth.nonce, this.nonce), ...this.intervals } });
      return;
    }
    // Closing answers at once (unless the test says otherwise), as a node with nothing to clean up.
    if (frame.kind === 'close' && this.answerClose)
      this.channel.send({ closeReply: { computeId: frame.close!.computeId }, requestId: frame.requestId });
    const waiter = this.waiters.find((candidate) => candidate.kind === frame.kind);
    if (waiter) {
      this.waiters = this.waiters.filter((candidate) => candidate !== waiter);
      waiter.resolve(frame);
    } else {
      this.frames.push(frame);
    }
  }
}
