import type { NodeLink } from '../cluster/node-link.js';
import { describeFiles } from '../cluster/local-files.js';
import type { ComputationEvents, JobRequest, LocalFile, SchedulerJob } from '../cluster/types.js';

/** A job of a SharedJobCluster as its `RemoteScheduler` tracks it. */
export interface RemoteJob<Ref> extends SchedulerJob<Ref> {
  nodeKey?: string;
  /** Held until the computation is set up at the scheduler (then sent and cleared). */
  request?: JobRequest<Ref>;
  /** Its per-job files are going to the scheduler; the Job frame follows. */
  sending?: boolean;
  /** Sent to the scheduler: kept until the job ends, to send it again if the scheduler never got it (link lost). */
  sent?: JobRequest<Ref>;
  /** Cancelled while the link was down: the cancel goes out once the computation is taken back. */
  cancelled?: boolean;
}

export interface RemoteJobSenderOptions<Ref> {
  /** The jobs not ended, by uid. */
  jobs: Map<number, RemoteJob<Ref>>;
  /** The connection to dispyscheduler now. */
  link(): NodeLink | undefined;
  events(): ComputationEvents<Ref>;
}

/** Sends a SharedJobCluster's jobs to dispyscheduler: per-job files first, then the Job frame. */
export class RemoteJobSender<Ref> {
  constructor(private readonly options: RemoteJobSenderOptions<Ref>) {}

  /** Sends a job held until now (its `request`). */
  send(job: RemoteJob<Ref>): void {
    const request = job.request!;
    job.request = undefined;
    if (request.files?.length) {
      job.sending = true;
      void this.sendWithFiles(job, request);
      return;
    }
    this.sendFrame(job, request);
  }

  /**
   * Per-job files go to the scheduler first (each in place there, FileDone), then the Job frame
   * naming them; a file that cannot be read or sent ends the job `terminated`, naming it. A job
   * cancelled meanwhile is not sent.
   */
  private async sendWithFiles(job: RemoteJob<Ref>, request: JobRequest<Ref>): Promise<void> {
    const { jobs } = this.options;
    const link = this.options.link()!;
    let files: LocalFile[] = [];
    let current = request.files![0];
    try {
      files = await describeFiles(request.files!);
      for (const file of files) {
        current = file.path;
        if (jobs.get(job.uid) !== job || link !== this.options.link()) return;
        await (
          await link.streamFile(request.computeId, file, job.uid)
        ).arrived;
      }
    } catch (error) {
      if (jobs.get(job.uid) !== job || link !== this.options.link()) return;
      jobs.delete(job.uid);
      this.options.events().jobFailed(job, 'terminated', `its depends file ${current} could not be sent: ${(error as Error).message}`);
      return;
    } finally {
      job.sending = undefined;
    }
    if (jobs.get(job.uid) !== job || link !== this.options.link()) return;
    this.sendFrame(job, request, files);
  }

  /** The Job frame (sent again as it is when the scheduler never got it). */
  sendFrame(job: RemoteJob<Ref>, request: JobRequest<Ref>, files: LocalFile[] = []): void {
    job.sent = request;
    const pin = request.pin;
    this.options.link()!.connection.send(
      {
        job: {
          computeId: request.computeId,
          jobId: job.uid,
          timeout: request.timeout ?? 0,
          definitions: request.definitions,
          files: files.map((file) => file.name),
          priority: request.priority,
          pinKey: pin && 'key' in pin ? pin.key : '',
          pinHost: pin && 'host' in pin ? pin.host : '',
        },
      },
      [request.args],
    );
  }
}
