import net from 'node:net';
import tls from 'node:tls';
import {
  FramedSocket,
  HANDSHAKE_LIMITS,
  PROTOCOL_VERSION,
  SESSION_LIMITS,
  clientProof,
  dispy,
  encodeValue,
  macEquals,
  newNonce,
  nodeProof,
  pskServerOptions,
  type Frame,
} from '@dispy/protocol';

/** A computation the fake node kept after its client died. */
export interface KeptComputation {
  /** Jobs still running: their replies come when the test ends them (`finish`) or Close terminates them. */
  held: number[];
  /** Replies kept (as on disk): sent at once after ReattachReply. */
  saved: dispy.IJobReply[];
}

/** A finished reply of `job` with `result`. */
export function finished(computeId: string, job: number, result: unknown, stdout = ''): dispy.IJobReply {
  return { computeId, jobId: job, status: dispy.JobStatus.FINISHED, result: encodeValue(result), stdout, startTime: 1, endTime: 2 };
}

/**
 * A dispynode of the test's own on a loopback address, speaking the real handshake over TCP and
 * the node's side of Reattach as part 1 specifies it: ReattachReply (held jobs, count of saved
 * replies), the saved replies, then each held job's reply as the test ends it; Close with
 * terminate_pending sends a Terminated reply per held job, then CloseReply, and forgets the
 * computation. Acks make it forget replies. It records every frame it receives.
 */
export class FakeDispynode {
  /** Frames received after authentication, in order. */
  readonly frames: Frame[] = [];
  readonly computations = new Map<string, KeptComputation>();
  private readonly channels = new Set<FramedSocket>();
  private attached?: { channel: FramedSocket; computeId: string };
  private readonly listeners = new Set<() => void>();
  /** Answer Reattach at all (false: a node that never answers). */
  answerReattach = true;

  private constructor(
    private readonly server: net.Server | tls.Server,
    readonly host: string,
    readonly port: number,
  ) {}

  static async start(host: string, secret = ''): Promise<FakeDispynode> {
    // With a secret, TLS with its pre-shared key, as a dispynode serves.
    const server = secret === '' ? net.createServer() : tls.createServer(pskServerOptions(secret));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => resolve());
    });
    const node = new FakeDispynode(server, host, (server.address() as net.AddressInfo).port);
    server.on(secret === '' ? 'connection' : 'secureConnection', (socket: net.Socket) => node.serve(socket, secret));
    return node;
  }

  /** Ends a held job with `reply`, sent to the client attached now (kept otherwise, as on disk). */
  finish(computeId: string, reply: dispy.IJobReply): void {
    const kept = this.computations.get(computeId)!;
    kept.held = kept.held.filter((job) => job !== Number(reply.jobId));
    if (this.attached?.computeId === computeId) this.attached.channel.send({ jobReply: reply });
    else kept.saved.push(reply);
  }

  /** Resolves when a frame of `kind` has arrived. */
  received(kind: NonNullable<Frame['kind']>): Promise<Frame> {
    return new Promise((resolve) => {
      const check = () => {
        const frame = this.frames.find((candidate) => candidate.kind === kind);
        if (!frame) return;
        this.listeners.delete(check);
        resolve(frame);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Job ids acknowledged so far. */
  get acked(): number[] {
    return this.frames.filter((frame) => frame.kind === 'jobAck').flatMap((frame) => (frame.jobAck as dispy.JobAck).jobIds.map(Number));
  }

  async stop(): Promise<void> {
    for (const channel of this.channels) channel.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: net.Socket, secret: string): void {
    const nonce = newNonce();
    let authenticated = false;
    const channel = new FramedSocket(socket, {
      limits: HANDSHAKE_LIMITS,
      onFrame: (frame) => {
        if (!authenticated) {
          const auth = frame.auth as dispy.Auth;
          if (!macEquals(clientProof(secret, nonce, auth.nonce), auth.mac)) {
            channel.end({ authResult: { ok: false, reason: "the client's secret does not match the node's" } });
            return;
          }
          authenticated = true;
          channel.setLimits(SESSION_LIMITS);
          channel.send({
            authResult: {
              ok: true,
              mac: nodeProof(secret, auth.nonce, nonce),
              nodeName: 'fake',
              heartbeatInterval: 10,
              zombieInterval: 3600,
            },
          });
          return;
        }
        this.frames.push(frame);
        this.handle(channel, frame);
        for (const listener of [...this.listeners]) listener();
      },
      onClose: () => {
        this.channels.delete(channel);
        if (this.attached?.channel === channel) this.attached = undefined;
      },
    });
    this.channels.add(channel);
    channel.send({ hello: { version: PROTOCOL_VERSION, nonce } });
  }

  private handle(channel: FramedSocket, frame: Frame): void {
    if (frame.kind === 'reattach') {
      if (!this.answerReattach) return;
      const computeId = (frame.reattach as dispy.Reattach).computeId;
      const kept = this.computations.get(computeId);
      if (!kept) {
        channel.send({ reattachReply: { computeId, ok: false, error: 'no such computation' }, requestId: frame.requestId });
        return;
      }
      this.attached = { channel, computeId };
      channel.send({
        reattachReply: { computeId, ok: true, live: false, heldJobIds: kept.held, savedReplies: kept.saved.length },
        requestId: frame.requestId,
      });
      for (const reply of kept.saved) channel.send({ jobReply: reply });
    } else if (frame.kind === 'jobAck') {
      const ack = frame.jobAck as dispy.JobAck;
      const kept = this.computations.get(ack.computeId);
      const acked = new Set(ack.jobIds.map(Number));
      if (kept) kept.saved = kept.saved.filter((reply) => !acked.has(Number(reply.jobId)));
    } else if (frame.kind === 'close') {
      const { computeId, terminatePending } = frame.close as dispy.Close;
      const kept = this.computations.get(computeId);
      if (kept && terminatePending) {
        for (const job of kept.held) {
          channel.send({
            jobReply: { computeId, jobId: job, status: dispy.JobStatus.TERMINATED, exception: 'terminated: its computation closed' },
          });
        }
      }
      this.computations.delete(computeId);
      channel.send({ closeReply: { computeId }, requestId: frame.requestId });
    }
  }
}
