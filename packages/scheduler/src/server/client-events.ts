import { dispy, type FrameInit } from '@dispy/protocol';
import type { ComputationEvents, JobEndStatus, JobOutcome, NodeInfo, SchedulerJob } from '../cluster/types.js';
import { dropJobFiles } from './client-job-files.js';
import type { ClientComputation, ClientJobRef } from './kept-client-computations.js';
import { WIRE_STATUS, describeNode } from './wire-node.js';

/**
 * The scheduler's events of a computation, as frames to the client connection that holds it now
 * (none while its link is lost). A job's end is a reply kept until the client acknowledges it
 * (saved to disk while the client is away); so is a job lost with its node while the client is away.
 */
export function computationEvents(computation: ClientComputation): ComputationEvents<ClientJobRef> {
  const { computeId } = computation;
  const send = (frame: FrameInit): void => void computation.link?.send(frame);
  const nodeStatus = (event: dispy.NodeStatus.Event, node: NodeInfo, extra: { lostJobIds?: number[]; why?: string } = {}): void =>
    send({ nodeStatus: { computeId, event, node: describeNode(node), ...extra } });
  const ended = (job: SchedulerJob<ClientJobRef>): number => {
    computation.jobs.delete(job.ref.jobId);
    dropJobFiles(computation, job.ref.jobId);
    return job.ref.jobId;
  };
  const reply = (job: SchedulerJob<ClientJobRef>, status: JobEndStatus, outcome: Partial<JobOutcome>, node?: NodeInfo, failed = false) => {
    // Jobs killed because their client was gone too long end Terminated, saying so.
    if (computation.closedBecause && status !== 'finished') {
      status = 'terminated';
      outcome = { ...outcome, exception: computation.closedBecause };
    }
    computation.replies.ended({
      computeId,
      jobId: ended(job),
      status: WIRE_STATUS[status],
      result: outcome.result,
      stdout: outcome.stdout,
      stderr: outcome.stderr,
      exception: outcome.exception,
      startTime: outcome.startTime,
      endTime: outcome.endTime,
      cpuTime: outcome.cpuTime,
      nodeKey: node?.key ?? '',
      failed,
    });
  };
  return {
    nodeUp: (node) => nodeStatus(dispy.NodeStatus.Event.UP, node),
    nodeDown: (node, lost, why) => {
      if (computation.link) nodeStatus(dispy.NodeStatus.Event.DOWN, node, { lostJobIds: lost.map(ended), why });
      else
        for (const job of lost)
          reply(job, 'cancelled', { exception: `node ${node.name} (${node.key}) went down: ${why}` }, undefined, true);
    },
    nodeFailed: (node, error) => nodeStatus(dispy.NodeStatus.Event.FAILED, node, { why: error }),
    nodeAvailInfo: (node) => nodeStatus(dispy.NodeStatus.Event.AVAIL, node),
    jobStarted: (job, node) =>
      send({ jobEvent: { computeId, jobId: job.ref.jobId, event: dispy.JobEvent.Event.STARTED, nodeKey: node.key } }),
    jobsRunning: (started, node) =>
      send({
        jobEvent: {
          computeId,
          event: dispy.JobEvent.Event.RUNNING,
          jobIds: started.map(({ job }) => job.ref.jobId),
          startTimes: started.map(({ startTime }) => startTime),
          nodeKey: node.key,
        },
      }),
    jobRequeued: (job, from) =>
      send({ jobEvent: { computeId, jobId: job.ref.jobId, event: dispy.JobEvent.Event.REQUEUED, nodeKey: from.key } }),
    jobProvisional: (job, result, node) =>
      send({
        jobReply: { computeId, jobId: job.ref.jobId, status: dispy.JobStatus.PROVISIONAL, result, nodeKey: node.key },
      }),
    jobDone: (job, outcome, node) => reply(job, outcome.status, outcome, node),
    jobFailed: (job, status, why, node) => reply(job, status, { exception: why }, node, true),
  };
}
