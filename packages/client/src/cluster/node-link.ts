import type { Frame } from '@dispy/protocol';
import { DispyNode } from '../node/dispy-node.js';
import { NodeConnection } from '../session/node-connection.js';

/** A node serving the cluster: its public DispyNode and the connection that reaches it. */
export class NodeLink {
  readonly node: DispyNode;
  readonly connection: NodeConnection;
  /** Address that discovery pings found it at. */
  readonly pingedAt: string;

  constructor(options: {
    host: string;
    port: number;
    name: string;
    pingedAt: string;
    localAddress?: string;
    secret: string;
    clientName: string;
    onFrame: (link: NodeLink, frame: Frame) => void;
    onClose: (link: NodeLink, error?: Error) => void;
  }) {
    this.node = new DispyNode(options.host, options.port, options.name);
    this.pingedAt = options.pingedAt;
    this.connection = new NodeConnection({
      host: options.host,
      port: options.port,
      localAddress: options.localAddress,
      secret: options.secret,
      clientName: options.clientName,
      onFrame: (frame) => options.onFrame(this, frame),
      onClose: (error) => options.onClose(this, error),
    });
  }

  get key(): string {
    return `${this.node.ipAddr}:${this.node.port}`;
  }

  /** Refreshes the byte counters from the socket. */
  countTraffic(): void {
    const socket = this.connection.socket;
    if (!socket) return;
    this.node.tx = socket.bytesWritten;
    this.node.rx = socket.bytesRead;
    this.node.updateTime = Date.now();
  }
}
