/**
 * The recover file: one JSON record per line, each ended by a newline, appended as the cluster
 * runs. A record counts only once its newline is there, so a file cut at any byte (a crash in the
 * middle of a write) still reads up to its last whole record. The first record is the header;
 * then nodes (numbered in the order they appear) and job states, as they change. It never holds
 * the secret: TLS files are named by path, the secret is given again to `recoverJobs`.
 *
 * ```
 * {"type":"header","format":"dispy-recover","version":1,"computeId":"3f…","name":"compute","createdAt":"2026-…Z","client":"host"}
 * {"type":"node","node":0,"host":"10.0.0.2","port":51348,"name":"n1"}
 * {"type":"job","job":1,"state":"running","node":0,"id":"first"}
 * {"type":"job","job":1,"state":"finished"}
 * ```
 */

/** The header's `format`: what tells a recover file from any other file. */
export const RECOVER_FILE_FORMAT = 'dispy-recover';
/** The version this release writes, and the newest it reads. */
export const RECOVER_FILE_VERSION = 1;
/** Default file names start with this (then the local time, `YYYYMMDDHHMMSS`), as in dispy. */
export const RECOVER_FILE_PREFIX = '_dispy_';

/** TLS files of the cluster (absolute paths) and pinned fingerprints, so recovery connects as it did. */
export interface RecoverFileTls {
  cafile?: string;
  certfile?: string;
  keyfile?: string;
  certFingerprint?: string | string[];
}

/** The first record: what the file is, and which computation it records. */
export interface RecoverFileHeader {
  type: 'header';
  format: typeof RECOVER_FILE_FORMAT;
  version: number;
  /** The computation's id on the nodes (what Reattach names). */
  computeId: string;
  /** The computation's name. */
  name: string;
  /** ISO time the cluster was created. */
  createdAt: string;
  /** The client's host name. */
  client: string;
  tls?: RecoverFileTls;
}

/** A node that served the computation; `node` numbers it for the job records. */
export interface NodeRecord {
  type: 'node';
  node: number;
  host: string;
  port: number;
  name: string;
}

/**
 * Where a job is: `queued` at the client (not on a node), `running` on `node` (sent there; its
 * reply is pending), or ended with a final status (the program got its outcome).
 */
export type JobState = 'queued' | 'running' | 'finished' | 'terminated' | 'cancelled';

/** A job's state changed. `job` is the client's job number (the job's id on the wire). */
export interface JobRecord {
  type: 'job';
  job: number;
  state: JobState;
  /** With `running`: the node it was sent to. */
  node?: number;
  /** With `running`: the program's `job.id` then, when it was a string, a finite number or a boolean. */
  id?: string | number | boolean;
}

export type RecoverRecord = RecoverFileHeader | NodeRecord | JobRecord;

export const JOB_STATES: readonly JobState[] = ['queued', 'running', 'finished', 'terminated', 'cancelled'];

/** The states in which a job is over for the program: its outcome was delivered. */
export function isEnded(state: JobState): boolean {
  return state !== 'queued' && state !== 'running';
}

/** `_dispy_YYYYMMDDHHMMSS` for a local time. */
export function defaultRecoverFileName(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return (
    RECOVER_FILE_PREFIX +
    `${date.getFullYear()}${two(date.getMonth() + 1)}${two(date.getDate())}` +
    `${two(date.getHours())}${two(date.getMinutes())}${two(date.getSeconds())}`
  );
}
