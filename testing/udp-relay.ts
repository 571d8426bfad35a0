import dgram from 'node:dgram';

/*
 * A UDP relay for integration tests (loopback only): what `socat` does at each end of an SSH
 * tunnel for dispy's discovery datagrams. Listens on `host:port`; each sender gets a socket of its
 * own toward `targetHost:targetPort`, and what comes back on it goes to that sender.
 */
export interface UdpRelay {
  /** Datagrams relayed toward the target so far. */
  readonly relayed: number;
  close(): Promise<void>;
}

/** Senders remembered at once; a relay for tests needs few. */
const MAX_PEERS = 64;

export async function startUdpRelay(host: string, port: number, targetHost: string, targetPort: number): Promise<UdpRelay> {
  const server = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const peers = new Map<string, dgram.Socket>();
  let relayed = 0;
  server.on('message', (message, from) => {
    const key = `${from.address}:${from.port}`;
    let upstream = peers.get(key);
    if (!upstream) {
      if (peers.size >= MAX_PEERS) return;
      upstream = dgram.createSocket(targetHost.includes(':') ? 'udp6' : 'udp4');
      upstream.on('message', (reply) => server.send(reply, from.port, from.address));
      upstream.on('error', () => undefined);
      peers.set(key, upstream);
    }
    relayed++;
    upstream.send(message, targetPort, targetHost);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.bind(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    get relayed() {
      return relayed;
    },
    close: async () => {
      for (const socket of peers.values()) socket.close();
      peers.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
