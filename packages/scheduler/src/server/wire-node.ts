import { dispy } from '@dispy/protocol';
import { toAvailInfo } from '../cluster/avail-info.js';
import type { JobEndStatus, NodeInfo } from '../cluster/types.js';

/** A node as dispyscheduler describes it to a SharedJobCluster (`NodeStatus.node`). */
export function describeNode(info: NodeInfo): dispy.INodeDescription {
  return {
    host: info.host,
    port: info.port,
    name: info.name,
    cpus: info.cpus,
    totalCpus: info.totalCpus,
    platform: info.platform,
    availInfo: info.availInfo,
    tx: info.tx,
    rx: info.rx,
  };
}

/** Updates (or makes) the client's NodeInfo of a node from its description. */
export function nodeFromDescription(described: dispy.INodeDescription | null | undefined, known?: NodeInfo): NodeInfo {
  const host = described?.host ?? known?.host ?? '';
  const port = described?.port ?? known?.port ?? 0;
  const info: NodeInfo = known ?? {
    key: `${host}:${port}`,
    host,
    port,
    name: described?.name || host,
    cpus: 0,
    totalCpus: 0,
    lastHeard: Date.now(),
    platform: '',
    tx: 0,
    rx: 0,
  };
  if (!described) return info;
  info.cpus = described.cpus ?? info.cpus;
  info.totalCpus = described.totalCpus ?? info.totalCpus;
  info.platform = described.platform ?? info.platform;
  if (described.availInfo) info.availInfo = toAvailInfo(described.availInfo);
  info.tx = Number(described.tx ?? info.tx);
  info.rx = Number(described.rx ?? info.rx);
  info.lastHeard = Date.now();
  return info;
}

/** A job's end status on the wire. */
export const WIRE_STATUS: Record<JobEndStatus, dispy.JobStatus> = {
  finished: dispy.JobStatus.FINISHED,
  terminated: dispy.JobStatus.TERMINATED,
  cancelled: dispy.JobStatus.CANCELLED,
};

/** A job's end status from the wire (anything unknown: terminated). */
export function endStatus(status: dispy.JobStatus): JobEndStatus {
  if (status === dispy.JobStatus.FINISHED) return 'finished';
  if (status === dispy.JobStatus.CANCELLED) return 'cancelled';
  return 'terminated';
}
