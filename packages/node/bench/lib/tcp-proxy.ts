/**
 * A round-robin TCP proxy on loopback: the stand-in for the load balancer in front of several
 * instances of one node. It balances connections (layer 4), as most load balancers in front of
 * HTTP/1.1 services do; a peer's client keeps a few keep-alive connections, so requests spread
 * over the instances by connection.
 */
import { connect, createServer, type Socket } from 'node:net';

export interface RoundRobinProxy {
  readonly port: number;
  /** Backend ports; instances are added as they start. */
  readonly backends: number[];
  /** Connections handed to each backend so far, in `backends` order. */
  connectionsPerBackend(): number[];
  close(): Promise<void>;
}

export async function startRoundRobinProxy(port: number, backends: number[] = []): Promise<RoundRobinProxy> {
  const sockets = new Set<Socket>();
  const counts = new Map<number, number>();
  let next = 0;
  const server = createServer((client) => {
    if (backends.length === 0) {
      client.destroy();
      return;
    }
    const target = backends[next++ % backends.length]!;
    counts.set(target, (counts.get(target) ?? 0) + 1);
    const upstream = connect({ host: '127.0.0.1', port: target });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => sockets.delete(s));
    }
    // Either side failing or closing ends both, as a load balancer would.
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port,
    backends,
    connectionsPerBackend: () => backends.map((b) => counts.get(b) ?? 0),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
