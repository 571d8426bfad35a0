import { PROTOCOL_VERSION } from '../version.js';
import { DispyError } from '../errors/dispy-error.js';
import { ErrorCode } from '../errors/error-codes.js';
import type { FramedSocket, Frame } from '../framing/framed-socket.js';
import type { Logger } from '../internal/logger.js';
import { macEquals, newNonce } from './hmac.js';
import { clientProof, nodeProof } from './handshake.js';

/** Milliseconds a client has to authenticate after connecting. */
const AUTH_TIMEOUT_MS = 10_000;

export interface ServerHandshakeOptions {
  channel: FramedSocket;
  /** The node's name, sent in AuthResult once the client proved the secret (never before). */
  name: string;
  /**
   * What the answering side is, as its messages say it (`this node`, `the node's`): `node`
   * (default) or `scheduler` (dispyscheduler answering a SharedJobCluster with the cluster secret).
   */
  role?: 'node' | 'scheduler';
  secret: string;
  logger: Logger;
  peer: string;
  /** Told to the client in AuthResult: seconds between heartbeats, and how long the node keeps a computation whose client is away. */
  heartbeatSeconds: number;
  zombieSeconds: number;
}

/**
 * The answering side of authentication (a node, or dispyscheduler toward its clients): Hello with a fresh nonce at once, then the client's Auth,
 * which must come first and within AUTH_TIMEOUT_MS, speak this protocol version and prove the
 * secret over both nonces. The node proves it in turn in AuthResult. Any other outcome ends the
 * connection.
 */
export class ServerHandshake {
  private readonly nonce = newNonce();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: ServerHandshakeOptions) {
    const { channel, logger, peer } = options;
    this.timer = setTimeout(() => {
      logger.warn(`client ${peer} did not authenticate in time; disconnected`);
      channel.destroy();
    }, AUTH_TIMEOUT_MS);
    channel.send({ hello: { version: PROTOCOL_VERSION, nonce: this.nonce } });
  }

  /**
   * Checks the client's first frame. Returns the client's name when it proved the secret (the
   * node has answered AuthResult ok); undefined when it did not (the connection is ending).
   */
  receive(frame: Frame): string | undefined {
    const { channel, name, secret, logger, peer } = this.options;
    const role = this.options.role ?? 'node';
    clearTimeout(this.timer);
    if (frame.kind !== 'auth' || !frame.auth) {
      channel.destroy(new DispyError(ErrorCode.PROTOCOL, `expected auth, got ${frame.kind}`));
      return undefined;
    }
    const auth = frame.auth;
    if (auth.version !== PROTOCOL_VERSION) {
      logger.warn(`client ${peer} speaks protocol ${auth.version}, this ${role} ${PROTOCOL_VERSION}; refused`);
      channel.end({ authResult: { ok: false, reason: `${role} speaks protocol ${PROTOCOL_VERSION}, client ${auth.version}` } });
      return undefined;
    }
    if (!auth.nonce || !auth.mac || !macEquals(clientProof(secret, this.nonce, auth.nonce), auth.mac)) {
      logger.warn(`client ${peer} failed authentication: its secret differs from this ${role}'s; refused`);
      channel.end({ authResult: { ok: false, reason: `the client's secret does not match the ${role}'s` } });
      return undefined;
    }
    const { heartbeatSeconds: heartbeatInterval, zombieSeconds: zombieInterval } = this.options;
    channel.send({
      authResult: { ok: true, mac: nodeProof(secret, auth.nonce, this.nonce), nodeName: name, heartbeatInterval, zombieInterval },
    });
    return auth.clientName || peer;
  }

  /** The connection ended: the timeout has nothing left to guard. */
  cancel(): void {
    clearTimeout(this.timer);
  }
}
