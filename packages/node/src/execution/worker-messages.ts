/** Messages between the node process and its worker processes (IPC, advanced serialization). */

export interface WorkerInit {
  type: 'init';
  name: string;
  source: string;
  computeDir: string;
  nodeName: string;
  nodeAddress: string;
}

export interface WorkerJob {
  jobId: number;
  args: Uint8Array;
}

/** Jobs to run one after the other; batching them saves a pipe write (and a wake-up) per job. */
export interface WorkerJobs {
  type: 'jobs';
  jobs: WorkerJob[];
}

/** Forget a job sent earlier if it has not started (the node has reported it cancelled). */
export interface WorkerDrop {
  type: 'drop';
  jobId: number;
}

export type ToWorker = WorkerInit | WorkerJobs | WorkerDrop;

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

export type FromWorker = WorkerReady | WorkerInitFailed | WorkerDone | WorkerShutdownRequest;
