import { ErrorCode, UNEXPECTED, dispatchFrame, dispy, type Frame, type FrameTable } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import { toAvailInfo } from './avail-info.js';
import type { JobFilesConfig, NodeLink } from './node-link.js';
import type { JobEndStatus, JobOutcome, QueuedJob } from './types.js';

/**
 * What to do with each kind of frame from a node that answers no request (answers are matched to
 * their requests by NodeConnection first): a handler, `'late'` for an answer whose request has
 * already ended (it timed out, or its node was given up), or `UNEXPECTED` for a frame a node
 * never sends a client. The compiler checks that every kind is listed.
 */
type FrameHandlers = FrameTable<[link: NodeLink], 'late' | typeof UNEXPECTED>;

/** What the router needs of the scheduler: its jobs, and how a job ends or goes back to the queue. */
export interface RouterContext<Ref> {
  readonly logger: Logger;
  /** How files sent by jobs (dispySendFile) are received. */
  readonly jobFiles: JobFilesConfig;
  job(uid: number): QueuedJob<Ref> | undefined;
  /** A job's final reply arrived. */
  replied(job: QueuedJob<Ref>, link: NodeLink, outcome: JobOutcome): void;
  /** A running job sent an intermediate result. */
  provisional(job: QueuedJob<Ref>, link: NodeLink, result: Uint8Array): void;
  /** The node refused a job. */
  refused(job: QueuedJob<Ref>, link: NodeLink, why: string): void;
  /** The node takes no new jobs: the job goes back to the queue. */
  requeue(job: QueuedJob<Ref>, link: NodeLink): void;
  /** Workers of the node started these jobs (JobEvent RUNNING). */
  running(link: NodeLink, started: Array<{ job: QueuedJob<Ref>; startTime: number }>): void;
  /** A pulse brought the node's availability. */
  availInfo(link: NodeLink): void;
  /** The node offers another number of CPUs now. */
  nodeCpus(link: NodeLink, cpus: number): void;
}

const STATUS: Record<number, JobEndStatus> = {
  [dispy.JobStatus.FINISHED]: 'finished',
  [dispy.JobStatus.TERMINATED]: 'terminated',
  [dispy.JobStatus.CANCELLED]: 'cancelled',
};

/** Routes the frames of every node to the scheduler, through one table of handlers by frame kind. */
export class ReplyRouter<Ref> {
  private readonly handlers: FrameHandlers;

  constructor(private readonly context: RouterContext<Ref>) {
    this.handlers = {
      jobReply: (reply, _frame, _attachment, link) => this.jobReply(link, reply),
      error: (error, _frame, _attachment, link) => this.error(link, error),
      fileChunk: (chunk, _frame, attachment, link) => link.files(context.jobFiles).receive(chunk, attachment),
      pulse: (pulse, _frame, _attachment, link) => {
        link.info.availInfo = toAvailInfo(pulse.availInfo);
        context.availInfo(link);
      },
      nodeCpus: (nodeCpus, _frame, _attachment, link) => context.nodeCpus(link, nodeCpus.cpus),
      setupReply: 'late',
      setCpusReply: 'late',
      closeReply: 'late',
      fileWant: 'late',
      fileDone: 'late',
      hello: UNEXPECTED,
      auth: UNEXPECTED,
      authResult: UNEXPECTED,
      setup: UNEXPECTED,
      job: UNEXPECTED,
      jobAck: UNEXPECTED,
      cancel: UNEXPECTED,
      close: UNEXPECTED,
      setCpus: UNEXPECTED,
      fileKept: UNEXPECTED,
      reattach: UNEXPECTED,
      reattachReply: UNEXPECTED,
      nodeStatus: UNEXPECTED,
      jobEvent: (event, _frame, _attachment, link) => this.jobEvent(link, event),
      reclaimReply: 'late',
      reclaim: UNEXPECTED,
      allocate: UNEXPECTED,
      allocateReply: UNEXPECTED,
      deallocate: UNEXPECTED,
      deallocateReply: UNEXPECTED,
    };
  }

  /** Handles one frame of `link`. */
  route(link: NodeLink, frame: Frame, attachment?: Buffer[]): void {
    const mark = dispatchFrame(this.handlers, frame, attachment, link);
    if (mark === 'late') {
      this.context.logger.debug(`node ${link.key}: ${frame.kind} (request ${frame.requestId}) came after its request ended; ignored`);
    } else if (mark === UNEXPECTED) {
      this.context.logger.warn(`node ${link.info.name} (${link.key}) sent an unexpected ${frame.kind} frame; ignored`);
    }
  }

  private jobReply(link: NodeLink, reply: dispy.JobReply): void {
    const uid = Number(reply.jobId);
    link.connection.ack(reply.computeId, uid);
    // Counted even when it is a duplicate: a reattached computation waits for the replies its node kept.
    if (reply.status !== dispy.JobStatus.PROVISIONAL) link.replyArrived(reply.computeId, uid);
    const job = this.context.job(uid);
    if (!job || job.nodeKey !== link.key) return;
    if (reply.status === dispy.JobStatus.PROVISIONAL) {
      this.context.provisional(job, link, reply.result);
      return;
    }
    link.jobEnded(job.computeId, uid);
    this.context.replied(job, link, {
      status: STATUS[reply.status] ?? 'terminated',
      result: reply.result,
      stdout: reply.stdout,
      stderr: reply.stderr,
      exception: reply.exception,
      startTime: reply.startTime,
      endTime: reply.endTime,
      cpuTime: reply.cpuTime,
    });
  }

  /** Starts of jobs, batched: those still out to this node are reported running. */
  private jobEvent(link: NodeLink, event: dispy.JobEvent): void {
    if (event.event !== dispy.JobEvent.Event.RUNNING) return;
    const started: Array<{ job: QueuedJob<Ref>; startTime: number }> = [];
    event.jobIds.forEach((id, index) => {
      const job = this.context.job(Number(id));
      if (job && job.nodeKey === link.key && job.computeId === event.computeId) {
        started.push({ job, startTime: Number(event.startTimes[index] ?? 0) });
      }
    });
    if (started.length > 0) this.context.running(link, started);
  }

  private error(link: NodeLink, error: dispy.Error): void {
    if (Number(error.jobId) === 0 && error.code === ErrorCode.NODE_STOPPED) {
      // The node is stopping: when its connection closes, it is gone, not to be reconnected.
      link.stopping = true;
      this.context.logger.info(`node ${link.info.name} (${link.key}) is stopping: ${error.message}`);
      return;
    }
    const job = error.jobId ? this.context.job(Number(error.jobId)) : undefined;
    if (!job || job.nodeKey !== link.key) {
      this.context.logger.warn(`node ${link.info.name} (${link.key}): ${error.message}`);
      return;
    }
    if (error.code === ErrorCode.NODE_STOPPED) {
      // The node stopped taking jobs after this one was sent: it runs elsewhere (or later).
      this.context.logger.debug(`node ${link.key} takes no new jobs; job ${job.uid} goes back to the queue`);
      this.context.requeue(job, link);
      return;
    }
    this.context.logger.warn(`node ${link.info.name} (${link.key}): ${error.message}`);
    this.context.refused(job, link, error.message);
  }
}
