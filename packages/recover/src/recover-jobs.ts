import { readdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DispyError, ErrorCode, OptionError, decodeValue, dispy, loadClientTls } from '@dispy/protocol';
import { createLogger } from '@dispy/protocol/internal';
import { DispyJob } from './dispy-job.js';
import { RECOVER_FILE_PREFIX, isEnded, type JobState } from './file/recover-file-format.js';
import { readRecoverFile, type RecoverFileContents } from './file/recover-file-reader.js';
import { RecoverFileWriter } from './file/recover-file-writer.js';
import { recoverFromNode, type NodeJobOutcome } from './node-recovery.js';

/** Options of `recoverJobs`. */
export interface RecoverJobsOptions {
  /**
   * Seconds to wait for jobs still running on their nodes; undefined: until every one ends. Jobs
   * still running then are terminated (`terminatePending`) or left to run, and come back with
   * status `Running`: call `recoverJobs` again later for them.
   */
  timeout?: number;
  /** Terminate the jobs still running when `timeout` passes (default false). */
  terminatePending?: boolean;
  /** The nodes' secret; default `DISPY_SECRET` from the environment, else none. The recover file never holds it. */
  secret?: string;
}

/**
 * Collects the results of a client that died, from the recover file its cluster wrote (the
 * `recoverFile` option of JobCluster). For every node the file says had jobs pending, it connects
 * (with `secret`, and the TLS files the cluster used), takes the computation back (Reattach), and
 * gets the replies the node kept (in memory or on disk) and those of the jobs it still runs as
 * they end, for up to `timeout` seconds; then terminates what still runs if `terminatePending`,
 * acknowledges the replies, and closes the computation on the node, which frees it for other
 * clients. Jobs collected are marked in the file; the file is deleted once nothing of it is left
 * to recover.
 *
 * Resolves with a DispyJob per job that was pending, in submission order: `id` is the program's
 * `job.id` when it was a string, number or boolean when the job went to its node, else the job's
 * number (1 for the cluster's first job, …); `status`, `result`, `stdout`, `stderr`, `exception`,
 * `ipAddr`, `startTime`, `endTime` as the node reported them. A job whose node could not be
 * reached or knows nothing of it is `Cancelled`, its `exception` naming the node and why; one
 * terminated for `terminatePending` is `Terminated`; one still running after `timeout` is
 * `Running`. `wait()` of every returned job resolves at once.
 *
 * @param recoverFile the file; default the newest `_dispy_*` file in the working directory
 * @throws DispyError `DISPY_ERR_RECOVER_FILE` naming the file when there is none, or it is
 *   missing, not a recover file, cut short in its header, or of a newer format; OptionError for
 *   a wrong option or TLS file
 */
export async function recoverJobs(recoverFile?: string, options: RecoverJobsOptions = {}): Promise<DispyJob[]> {
  const { timeout, terminatePending = false } = options;
  if (recoverFile !== undefined && (typeof recoverFile !== 'string' || recoverFile === '')) {
    throw new OptionError(`recoverJobs: recoverFile must be a path, got ${JSON.stringify(recoverFile)}`);
  }
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout >= 0)) {
    throw new OptionError(`recoverJobs: timeout must be a number of seconds ≥ 0, got ${String(timeout)}`);
  }
  if (typeof terminatePending !== 'boolean')
    throw new OptionError(`recoverJobs: terminatePending must be true or false, got ${String(terminatePending)}`);
  const secret = options.secret ?? process.env.DISPY_SECRET ?? '';
  if (typeof secret !== 'string') throw new OptionError(`recoverJobs: secret must be a string, got ${typeof secret}`);

  const file = recoverFile ?? (await newestRecoverFile(process.cwd()));
  const contents = await readRecoverFile(file);
  const logger = createLogger('dispy recoverJobs', 'warn');
  if (contents.damaged.length > 0) {
    logger.warn(`recover file ${file}: lines ${contents.damaged.join(', ')} are damaged and were skipped`);
  }
  const tls = loadClientTls(contents.header.tls ?? {}, 'recoverJobs (TLS files of the recover file)');

  const pendingByNode = new Map<number, number[]>();
  const outcomes = new Map<number, { outcome: NodeJobOutcome; host?: string }>();
  for (const entry of contents.jobs.values()) {
    if (entry.state !== 'running' || entry.node === undefined) continue;
    if (!contents.nodes.has(entry.node)) {
      outcomes.set(entry.job, { outcome: { kind: 'lost', why: `the recover file names no node ${entry.node} (its record is damaged)` } });
    } else {
      pendingByNode.set(entry.node, [...(pendingByNode.get(entry.node) ?? []), entry.job]);
    }
  }
  const deadline = timeout === undefined ? undefined : Date.now() + timeout * 1000;
  const ended = (job: number) => {
    const state = contents.jobs.get(job)?.state;
    return state !== undefined && isEnded(state);
  };
  const results = await Promise.all(
    [...pendingByNode].map(async ([index, pending]) => {
      const node = contents.nodes.get(index)!;
      const result = await recoverFromNode({
        host: node.host,
        port: node.port,
        name: node.name,
        computeId: contents.header.computeId,
        secret,
        tls,
        clientName: os.hostname(),
        pending,
        ended,
        deadline,
        terminatePending,
      });
      return { host: node.host, result };
    }),
  );
  for (const { host, result } of results) {
    for (const [job, outcome] of result.outcomes) {
      // A job sent again elsewhere (reentrant) may be known to two nodes: a reply wins.
      const known = outcomes.get(job);
      if (!known || (known.outcome.kind !== 'replied' && outcome.kind === 'replied')) outcomes.set(job, { outcome, host });
    }
  }
  const jobs = [...outcomes]
    .sort(([a], [b]) => a - b)
    .map(([number, { outcome, host }]) => toDispyJob(number, contents.jobs.get(number)?.id, outcome, host));
  try {
    markCollected(contents, outcomes);
  } catch (error) {
    // The results are in hand: a file that cannot be updated must not lose them.
    logger.warn((error as Error).message);
  }
  return jobs;
}

/** Records in the file what was collected; deletes the file when nothing is left to recover. */
function markCollected(contents: RecoverFileContents, outcomes: Map<number, { outcome: NodeJobOutcome }>): void {
  const left = [...outcomes.values()].filter(({ outcome }) => outcome.kind === 'running' || outcome.kind === 'unreachable');
  const writer = RecoverFileWriter.append(contents.path, contents);
  if (left.length === 0) {
    writer.close({ remove: true });
    return;
  }
  for (const [job, { outcome }] of outcomes) {
    const state = finalState(outcome);
    if (state) writer.jobEnded(job, state);
  }
  writer.close();
}

function finalState(outcome: NodeJobOutcome): Exclude<JobState, 'queued' | 'running'> | undefined {
  switch (outcome.kind) {
    case 'replied':
      return outcome.reply.status === dispy.JobStatus.FINISHED
        ? 'finished'
        : outcome.reply.status === dispy.JobStatus.CANCELLED
          ? 'cancelled'
          : 'terminated';
    case 'lost':
      return 'cancelled';
    case 'terminated':
      return 'terminated';
    default:
      return undefined;
  }
}

function toDispyJob(number: number, id: unknown, outcome: NodeJobOutcome, host: string | undefined): DispyJob {
  const job = new DispyJob(id ?? number);
  job.ipAddr = host;
  switch (outcome.kind) {
    case 'replied': {
      const { reply } = outcome;
      job.stdout = reply.stdout;
      job.stderr = reply.stderr;
      job.startTime = reply.startTime || undefined;
      job.endTime = reply.endTime || undefined;
      if (reply.status === dispy.JobStatus.FINISHED) {
        try {
          job.result = decodeValue(reply.result);
          job.status = DispyJob.Finished;
        } catch (error) {
          job.status = DispyJob.Terminated;
          job.exception = `the result could not be decoded: ${(error as Error).message}`;
        }
      } else {
        job.status = reply.status === dispy.JobStatus.CANCELLED ? DispyJob.Cancelled : DispyJob.Terminated;
        job.exception = reply.exception || undefined;
      }
      break;
    }
    case 'running':
      job.status = DispyJob.Running;
      break;
    case 'terminated':
      job.status = DispyJob.Terminated;
      job.exception = outcome.why;
      break;
    case 'lost':
    case 'unreachable':
      job.status = DispyJob.Cancelled;
      job.exception = outcome.why;
      break;
  }
  job.settle();
  return job;
}

/**
 * The newest `_dispy_*` file in `dir` (by modification time).
 * @throws DispyError `DISPY_ERR_RECOVER_FILE` when there is none
 */
export async function newestRecoverFile(dir: string): Promise<string> {
  let newest: { file: string; mtime: number } | undefined;
  for (const name of await readdir(dir).catch(() => [])) {
    if (!name.startsWith(RECOVER_FILE_PREFIX)) continue;
    const file = path.join(dir, name);
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) continue;
    if (!newest || info.mtimeMs > newest.mtime || (info.mtimeMs === newest.mtime && file > newest.file)) {
      newest = { file, mtime: info.mtimeMs };
    }
  }
  if (!newest) {
    throw new DispyError(ErrorCode.RECOVER_FILE, `no recover file (${RECOVER_FILE_PREFIX}*) in ${dir}; name the file: recoverJobs(path)`);
  }
  return newest.file;
}
