import { JobCluster } from '../src/index.js';
import type { NodeProcess } from '../../../testing/dispynode-process.mjs';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a computation of any signature
type AnyFunction = (...args: any[]) => any;
type Nodes = NodeProcess | readonly NodeProcess[];

/**
 * Returns the `clusterOn` of a test file: it makes a cluster on the given nodes over loopback,
 * quiet, the way a user would, and adds it to `clusters`, which the file closes after each test.
 */
export function clusterMaker(clusters: JobCluster[]) {
  function clusterOn<F extends AnyFunction>(computation: F, nodes: Nodes, extra?: Record<string, unknown>): JobCluster<F>;
  function clusterOn(program: string, nodes: Nodes, extra?: Record<string, unknown>): JobCluster;
  function clusterOn(computation: AnyFunction | string, nodes: Nodes, extra: Record<string, unknown> = {}): JobCluster {
    const list: readonly NodeProcess[] = Array.isArray(nodes) ? nodes : [nodes as NodeProcess];
    const cluster = new JobCluster(computation, {
      nodes: list.map((node) => node.host),
      nodePort: list[0]!.port,
      ipAddr: '127.0.0.1',
      port: 0,
      loglevel: 'silent',
      ...extra,
    });
    clusters.push(cluster);
    return cluster;
  }
  return clusterOn;
}
