import net from 'node:net';

/*
 * A TCP relay that stands between a client and a dispynode, for integration tests that must
 * control the timing of what the node sends: a node started with `--ext-host RELAY_HOST` tells
 * clients (in its discovery replies) to connect to RELAY_HOST at its own port, where the relay
 * listens and forwards each connection to the node. Loopback only.
 */

export interface TcpRelay {
  /** Holds every byte the node sends (in order, per connection) until `release()`; the client's bytes still go through. */
  hold(): void;
  /** Delivers what was held, then relays as before. */
  release(): void;
  /**
   * Once more than `bytes` have come from the node over one connection, cuts that connection on
   * both sides at once (as when the client dies). Only the first connection to get there is cut.
   */
  cutAfter(bytes: number): void;
  /** Whether a connection was cut by `cutAfter`. */
  readonly cut: boolean;
  /**
   * Cuts every connection through the relay now, on both sides (as a network blip or a peer's
   * reset would); new connections are relayed as before. Resolves with how many were cut.
   */
  cutNow(): number;
  /** Closes the relay and every connection through it. */
  close(): Promise<void>;
}

interface Link {
  client: net.Socket;
  toNode: net.Socket;
  fromNode: number;
  held: Buffer[];
}

/** Listens on `host:port` and relays each connection to the node at `nodeHost:port`. */
export async function startRelay(host: string, nodeHost: string, port: number): Promise<TcpRelay> {
  const links = new Set<Link>();
  let holding = false;
  let cutAfterBytes = Infinity;
  let cut = false;

  const forward = (link: Link, chunk: Buffer): void => {
    if (!link.client.write(chunk)) {
      link.toNode.pause();
      link.client.once('drain', () => link.toNode.resume());
    }
  };

  const server = net.createServer((client) => {
    const toNode = net.connect({ host: nodeHost, port });
    const link: Link = { client, toNode, fromNode: 0, held: [] };
    links.add(link);
    for (const socket of [client, toNode]) {
      socket.on('error', () => undefined); // the other side's close follows
      socket.on('close', () => {
        client.destroy();
        toNode.destroy();
        links.delete(link);
      });
    }
    client.on('data', (chunk: Buffer) => {
      if (!toNode.write(chunk)) {
        client.pause();
        toNode.once('drain', () => client.resume());
      }
    });
    toNode.on('data', (chunk: Buffer) => {
      link.fromNode += chunk.length;
      if (!cut && link.fromNode > cutAfterBytes) {
        cut = true;
        toNode.destroy();
        client.destroy();
        return;
      }
      if (holding) link.held.push(chunk);
      else forward(link, chunk);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });

  return {
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      for (const link of links) {
        for (const chunk of link.held.splice(0)) forward(link, chunk);
      }
    },
    cutAfter: (bytes) => {
      cutAfterBytes = bytes;
    },
    get cut() {
      return cut;
    },
    cutNow: () => {
      const count = links.size;
      for (const link of [...links]) {
        link.toNode.destroy();
        link.client.destroy();
      }
      return count;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const link of links) {
          link.client.destroy();
          link.toNode.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
