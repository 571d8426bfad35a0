import net from 'node:net';

/*
 * A man in the middle for integration tests: it stands between a client and a dispynode (started
 * with `--ext-host PROXY_HOST`, so the client connects to PROXY_HOST at the node's port), relays
 * each connection frame by frame, records every byte it relays, and lets the test alter or inject
 * frames in either direction, as an attacker on a forwarded port would. Plain frames' headers are
 * in the clear, and so are TLS records' (a connection with a secret is TLS with its pre-shared
 * key), so the proxy can always cut the stream into frames, or records; what it cannot do is read
 * or forge a record's contents. Loopback only.
 */

export type Direction = 'toNode' | 'toClient';

/**
 * One frame (on a TLS connection, one TLS record) as relayed: its bytes (header included), its
 * index in its direction, whether it has an attachment (after its body).
 */
export interface RelayedFrame {
  direction: Direction;
  /** 0 for a connection's first frame in this direction. */
  index: number;
  /** Which connection through the proxy (0 for the first). */
  connection: number;
  bytes: Buffer;
  attached: boolean;
  /** For a TLS record, its content type (22 handshake, 20 change cipher spec, 23 encrypted data, 21 alert). */
  tlsType?: number;
  /** For a TLS record of encrypted data (type 23), its index among those of its direction: the first are the rest of TLS's handshake. */
  dataIndex?: number;
}

/**
 * Decides what to send on in place of a frame: the frame's bytes (possibly altered), several
 * buffers (frames injected before or after it), or nothing.
 */
export type Tamper = (frame: RelayedFrame) => Buffer | Buffer[] | undefined;

export interface MitmProxy {
  /** Everything relayed so far, in the direction given. */
  seen(direction: Direction): Buffer;
  /** The frames relayed so far. */
  readonly frames: RelayedFrame[];
  /** Replaces how frames are relayed from now on (default: unchanged). */
  tamper(tamper: Tamper | undefined): void;
  close(): Promise<void>;
}

/** Bytes of a frame's header and body, once its header has arrived; 0 when not yet known. */
function frameLength(buffer: Buffer): { length: number; attached: boolean } {
  if (buffer.length < 4) return { length: 0, attached: false };
  const first = buffer.readUInt32BE(0);
  if (first < 0x80000000) return { length: 4 + first, attached: false };
  if (buffer.length < 8) return { length: 0, attached: true };
  return { length: 8 + (first - 0x80000000) + buffer.readUInt32BE(4), attached: true };
}

/** Bytes of a TLS record (5-byte header: type, version, length), once its header has arrived; 0 when not yet known. */
function recordLength(buffer: Buffer): { length: number; attached: boolean } {
  return { length: buffer.length < 5 ? 0 : 5 + buffer.readUInt16BE(3), attached: false };
}

/** Whether a stream's first byte is a TLS record's content type (20–23) rather than a plain frame's length. */
const startsTls = (first: number): boolean => first >= 20 && first <= 23;

/** Listens on `host:port` and relays each connection to the node at `nodeHost:port`. */
export async function startMitmProxy(host: string, nodeHost: string, port: number): Promise<MitmProxy> {
  const sockets = new Set<net.Socket>();
  const seen: Record<Direction, Buffer[]> = { toNode: [], toClient: [] };
  const frames: RelayedFrame[] = [];
  let tamper: Tamper | undefined;
  let connections = 0;

  const relay = (connection: number, direction: Direction, from: net.Socket, to: net.Socket): void => {
    let pending = Buffer.alloc(0);
    let index = 0;
    let dataIndex = 0;
    let tls: boolean | undefined;
    from.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      tls ??= startsTls(pending[0]!);
      // Bounded: each pass consumes one whole frame.
      for (;;) {
        const { length, attached } = tls ? recordLength(pending) : frameLength(pending);
        if (length === 0 || pending.length < length) return;
        const frame: RelayedFrame = { direction, index: index++, connection, bytes: pending.subarray(0, length), attached };
        if (tls) {
          frame.tlsType = pending[0]!;
          if (frame.tlsType === 23) frame.dataIndex = dataIndex++;
        }
        pending = pending.subarray(length);
        frames.push(frame);
        const out = tamper ? tamper(frame) : frame.bytes;
        for (const piece of out === undefined ? [] : Array.isArray(out) ? out : [out]) {
          seen[direction].push(piece);
          to.write(piece);
        }
      }
    });
  };

  const server = net.createServer((client) => {
    const connection = connections++;
    const toNode = net.connect({ host: nodeHost, port });
    for (const socket of [client, toNode]) {
      sockets.add(socket);
      socket.on('error', () => undefined); // the close that follows ends both
      socket.on('close', () => {
        client.destroy();
        toNode.destroy();
        sockets.delete(socket);
      });
    }
    relay(connection, 'toNode', client, toNode);
    relay(connection, 'toClient', toNode, client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    seen: (direction) => Buffer.concat(seen[direction]),
    frames,
    tamper: (next) => {
      tamper = next;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
