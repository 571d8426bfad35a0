import type { dispy } from '../schema/schema.js';

/**
 * A node's availability, measured on the node and carried by its discovery replies and pulses:
 * the one definition for the node, the scheduler and the client (`DispyNode.availInfo`).
 */
export interface AvailInfo {
  /** % of CPU idle since the previous reading. */
  cpu: number;
  /** Bytes of memory available. */
  memory: number;
  /** Bytes free on the disk that holds the node's files (its dest path prefix). */
  disk: number;
  /** % of swap free (100 without swap). */
  swap: number;
}

/** The AvailInfo of a wire message (undefined when the node sent none). */
export function toAvailInfo(info: dispy.IAvailInfo | null | undefined): AvailInfo | undefined {
  if (!info) return undefined;
  return { cpu: info.cpu ?? 0, memory: info.memory ?? 0, disk: info.disk ?? 0, swap: info.swap ?? 0 };
}
