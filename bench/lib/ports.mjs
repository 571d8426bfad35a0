// Finds a port that is free on 127.0.0.1 for both TCP and UDP (dispynode binds both).
import dgram from 'node:dgram';
import net from 'node:net';

const HOST = '127.0.0.1';

/** Asks the kernel for a free TCP port, then releases it. */
function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** True if UDP `port` can be bound on 127.0.0.1 right now. */
function udpPortIsFree(port) {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind(port, HOST, () => socket.close(() => resolve(true)));
  });
}

/**
 * A port free for TCP and UDP on 127.0.0.1. There is a small race (someone may take it before
 * the caller binds it), which is acceptable for a benchmark on a developer machine.
 */
export async function freePort(attempts = 20) {
  for (let i = 0; i < attempts; i++) {
    const port = await freeTcpPort();
    if (await udpPortIsFree(port)) return port;
  }
  throw new Error(`no port free for both TCP and UDP on ${HOST} after ${attempts} attempts`);
}
