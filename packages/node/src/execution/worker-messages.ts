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
  type: 'job';
  jobId: number;
  args: Uint8Array;
}

export type ToWorker = WorkerInit | WorkerJob;

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

export type FromWorker = WorkerReady | WorkerInitFailed | WorkerDone;
