import type { dispy } from '@dispy/protocol';

/**
 * A node's availability, measured on the node and carried by its discovery replies and pulses.
 * The one definition for the scheduler and the client (`DispyNode.availInfo`).
 */
export interface AvailInfo {
  /** % of CPU idle. */
  cpu: number;
  /** Bytes of memory available. */
  memory: number;
  /** Bytes free on the disk of the node's files. */
  disk: number;
  /** % of swap free. */
  swap: number;
}

/** The AvailInfo of a wire message (undefined when the node sent none). */
export function toAvailInfo(info: dispy.IAvailInfo | null | undefined): AvailInfo | undefined {
  if (!info) return undefined;
  return { cpu: info.cpu ?? 0, memory: info.memory ?? 0, disk: info.disk ?? 0, swap: info.swap ?? 0 };
}
