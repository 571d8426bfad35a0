/**
 * Messages between the node process and its worker processes: jobs and drops on the job channel
 * (job-channel.ts), which keeps them in order and carries arguments without copies; the rest on
 * the IPC channel (advanced serialization).
 */

/** A function or class shipped as source, defined as a global of that name. */
export interface Definition {
  name: string;
  source: string;
}

export interface WorkerInit {
  type: 'init';
  name: string;
  source: string;
  computeDir: string;
  nodeName: string;
  nodeAddress: string;
  /** Functions and classes of depends. */
  definitions: Definition[];
  /** Value codec: { name: value } of depends. */
  values?: Uint8Array;
  /** Run before the first job; must return 0 (or a promise of 0). */
  setup?: Definition;
  /** Value codec: arguments to setup. */
  setupArgs?: Uint8Array;
  /** Cap on each of a job's stdout, stderr and exception text, in bytes (0: none; default 1 MiB). */
  maxOutputBytes?: number;
}

/** A job to run after those sent before it; its encoded arguments are the frame's attachment. */
export interface WorkerJob {
  type: 'job';
  jobId: number;
  /** Per-job functions and classes, defined for this job only. */
  definitions?: Definition[];
}

/** Run the computation's cleanup function (once, before the pool closes). */
export interface WorkerCleanup {
  type: 'cleanup';
  cleanup: Definition;
}

/** The node's answer to a send-file request of a job. */
export interface WorkerSendFileDone {
  type: 'send-file-done';
  requestId: number;
  error?: string;
}

/** Forget a job sent earlier if it has not started (the node has reported it cancelled). */
export interface WorkerDrop {
  type: 'drop';
  jobId: number;
}

/**
 * Give back a job sent earlier if it has not started (the client moves it to another node); the
 * worker answers `reclaimed` on the IPC channel, saying whether it dropped it.
 */
export interface WorkerReclaim {
  type: 'reclaim';
  jobId: number;
}

/** On the IPC channel. */
export type ToWorker = WorkerInit | WorkerCleanup | WorkerSendFileDone;

/** On the job channel, in the order the worker must see them. */
export type JobChannelMessage = WorkerJob | WorkerDrop | WorkerReclaim;

export interface WorkerReady {
  type: 'ready';
}

export interface WorkerInitFailed {
  type: 'init-failed';
  error: string;
}

export interface WorkerDone {
  type: 'done';
  jobId: number;
  /** true: returned; false: threw (Terminated), or was cancelled. */
  ok: boolean;
  /** Ended by a cancel request (its worker was killed). */
  cancelled?: boolean;
  /** An error escaped the job: the worker exits now and takes no more jobs. */
  fatal?: boolean;
  /** The job started a process (child_process): the node kills what of it is left (process-marks.ts). */
  spawned?: boolean;
  result?: Uint8Array;
  exception?: string;
  stdout: string;
  stderr: string;
  startTime: number;
  endTime: number;
  cpuTime: number;
}

/** A computation called dispynode_shutdown(); the node decides (--client-shutdown). */
export interface WorkerShutdownRequest {
  type: 'shutdown-request';
}

/** dispyProvisionalResult(value) in a job. */
export interface WorkerProvisional {
  type: 'provisional';
  jobId: number;
  result: Uint8Array;
}

/** dispySendFile(path) in a job: the node streams the file to the client. */
export interface WorkerSendFile {
  type: 'send-file';
  requestId: number;
  jobId: number;
  path: string;
}

/** The answer to a `reclaim`: dropped (it will never run here), or not (it started, or ended). */
export interface WorkerReclaimed {
  type: 'reclaimed';
  jobId: number;
  dropped: boolean;
}

export interface WorkerCleanupDone {
  type: 'cleanup-done';
  error?: string;
}

export type FromWorker =
  | WorkerReady
  | WorkerInitFailed
  | WorkerDone
  | WorkerShutdownRequest
  | WorkerProvisional
  | WorkerSendFile
  | WorkerCleanupDone
  | WorkerReclaimed;
