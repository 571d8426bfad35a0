import type { Logger } from '@dispy/protocol/internal';
import { ErrorCode, UNEXPECTED, dispatchFrame, dispy, type Frame, type FrameTable } from '@dispy/protocol';
import type { NodeLink } from '../cluster/node-link.js';
import type { ComputationEvents, NodeInfo } from '../cluster/types.js';
import type { RemoteJob } from './remote-job-sender.js';
import { NOT_ON_SHARED_LINK } from './shared-link-frames.js';
import { endStatus, nodeFromDescription } from './wire-node.js';

type Handlers = FrameTable<[], 'ignored' | typeof UNEXPECTED>;

export interface RemoteEventsOptions<Ref> {
  /** The jobs not ended, by uid. */
  jobs: Map<number, RemoteJob<Ref>>;
  /** Nodes serving the computation now, by key. */
  nodes: Map<string, NodeInfo>;
  /** The connection to dispyscheduler now. */
  link(): NodeLink | undefined;
  events(): ComputationEvents<Ref>;
  logger: Logger;
  /** dispyscheduler's address, for messages. */
  where: string;
}

/**
 * dispyscheduler's frames to a SharedJobCluster (JobReply, JobEvent, NodeStatus, Error), turned
 * back into the computation's `ComputationEvents` as JobScheduler would give them.
 */
export class RemoteEvents<Ref> {
  private readonly handlers: Handlers;

  constructor(private readonly options: RemoteEventsOptions<Ref>) {
    this.handlers = {
      jobReply: (reply) => this.jobReply(reply),
      jobEvent: (event) => this.jobEvent(event),
      nodeStatus: (status) => this.nodeStatus(status),
      pulse: () => undefined,
      error: (error) => {
        // The scheduler is stopping (it closed our computation): its connection's end is not a loss to recover from.
        const link = this.options.link();
        if (error.code === ErrorCode.NODE_STOPPED && link) link.stopping = true;
        this.options.logger.warn(`dispyscheduler ${this.options.where}: ${error.message}`);
      },
      setupReply: 'ignored',
      closeReply: 'ignored',
      fileWant: 'ignored',
      fileDone: 'ignored',
      setCpusReply: 'ignored',
      reattachReply: 'ignored',
      allocateReply: 'ignored',
      deallocateReply: 'ignored',
      // Taken by RemoteScheduler (files sent by jobs, relayed), which knows the link.
      fileChunk: 'ignored',
      allocate: UNEXPECTED,
      deallocate: UNEXPECTED,
      setup: UNEXPECTED,
      job: UNEXPECTED,
      jobAck: UNEXPECTED,
      cancel: UNEXPECTED,
      close: UNEXPECTED,
      setCpus: UNEXPECTED,
      reattach: UNEXPECTED,
      ...NOT_ON_SHARED_LINK,
    };
  }

  /** Handles a frame from dispyscheduler; one it should not send is logged and ignored. */
  receive(frame: Frame, attachment?: Buffer[]): void {
    const mark = dispatchFrame(this.handlers, frame, attachment);
    if (mark === UNEXPECTED)
      this.options.logger.warn(`dispyscheduler ${this.options.where} sent an unexpected ${frame.kind} frame; ignored`);
  }

  private nodeOf(key: string): NodeInfo {
    const known = this.options.nodes.get(key);
    if (known) return known;
    const at = key.lastIndexOf(':');
    return nodeFromDescription({ host: key.slice(0, at), port: Number(key.slice(at + 1)) });
  }

  jobReply(reply: dispy.JobReply): void {
    const uid = Number(reply.jobId);
    const link = this.options.link();
    if (reply.status !== dispy.JobStatus.PROVISIONAL && link) {
      // Acknowledged even when it is a duplicate (resent after a reconnect); counted for a Reattach.
      link.connection.ack(reply.computeId, uid);
      link.replyArrived(reply.computeId, uid);
    }
    const job = this.options.jobs.get(uid);
    if (!job) return;
    const events = this.options.events();
    const node = reply.nodeKey ? this.nodeOf(reply.nodeKey) : undefined;
    if (reply.status === dispy.JobStatus.PROVISIONAL) {
      if (node) events.jobProvisional(job, reply.result, node);
      return;
    }
    this.options.jobs.delete(uid);
    link?.jobEnded(reply.computeId, uid);
    const status = endStatus(reply.status);
    if (reply.failed || !node) {
      events.jobFailed(job, status === 'finished' ? 'terminated' : status, reply.exception, node);
      return;
    }
    events.jobDone(
      job,
      {
        status,
        result: reply.result,
        stdout: reply.stdout,
        stderr: reply.stderr,
        exception: reply.exception,
        startTime: reply.startTime,
        endTime: reply.endTime,
        cpuTime: reply.cpuTime,
      },
      node,
    );
  }

  jobEvent(event: dispy.JobEvent): void {
    if (event.event === dispy.JobEvent.Event.RUNNING) {
      const node = this.nodeOf(event.nodeKey);
      const started: Array<{ job: RemoteJob<Ref>; startTime: number }> = [];
      event.jobIds.forEach((id, index) => {
        const job = this.options.jobs.get(Number(id));
        if (job && job.nodeKey === node.key) started.push({ job, startTime: Number(event.startTimes[index] ?? 0) });
      });
      if (started.length > 0) this.options.events().jobsRunning(started, node);
      return;
    }
    const job = this.options.jobs.get(Number(event.jobId));
    if (!job) return;
    const node = this.nodeOf(event.nodeKey);
    if (event.event === dispy.JobEvent.Event.STARTED) {
      job.nodeKey = node.key;
      this.options.events().jobStarted(job, node);
    } else if (event.event === dispy.JobEvent.Event.REQUEUED) {
      job.nodeKey = undefined;
      this.options.events().jobRequeued(job, node);
    }
  }

  nodeStatus(status: dispy.NodeStatus): void {
    const events = this.options.events();
    const described = status.node;
    const key = `${described?.host ?? ''}:${described?.port ?? 0}`;
    const info = nodeFromDescription(described, this.options.nodes.get(key));
    switch (status.event) {
      case dispy.NodeStatus.Event.UP:
        this.options.nodes.set(key, info);
        events.nodeUp(info);
        break;
      case dispy.NodeStatus.Event.DOWN: {
        this.options.nodes.delete(key);
        const lost: RemoteJob<Ref>[] = [];
        for (const id of status.lostJobIds) {
          const job = this.options.jobs.get(Number(id));
          if (!job) continue;
          this.options.jobs.delete(job.uid);
          lost.push(job);
        }
        events.nodeDown(info, lost, status.why);
        break;
      }
      case dispy.NodeStatus.Event.FAILED:
        events.nodeFailed(info, status.why);
        break;
      case dispy.NodeStatus.Event.AVAIL:
        if (this.options.nodes.has(key)) events.nodeAvailInfo(info);
        break;
    }
  }
}
