import { readFile } from 'node:fs/promises';
import { DispyError, ErrorCode } from '@dispy/protocol';
import {
  JOB_STATES,
  RECOVER_FILE_FORMAT,
  RECOVER_FILE_VERSION,
  type JobState,
  type NodeRecord,
  type RecoverFileHeader,
  type RecoverFileTls,
} from './recover-file-format.js';

/** A job as the file last recorded it. */
export interface RecoveredJobEntry {
  /** The client's job number (its id on the wire). */
  job: number;
  state: JobState;
  /** The node it was last sent to. */
  node?: number;
  /** The program's `job.id`, when the file could keep it. */
  id?: string | number | boolean;
}

/** What a recover file holds, up to its last whole record. */
export interface RecoverFileContents {
  path: string;
  header: RecoverFileHeader;
  /** Nodes by their number. */
  nodes: Map<number, NodeRecord>;
  /** Jobs by job number. */
  jobs: Map<number, RecoveredJobEntry>;
  /** Where the last whole record ends (bytes after it are a record cut short). */
  wholeBytes: number;
  /** Line numbers (1-based) of whole lines that are not records (damage); they are skipped. */
  damaged: number[];
}

// The writer puts these keys first, so even a header cut short is known for ours.
const HEADER_START = `{"type":"header","format":"${RECOVER_FILE_FORMAT}"`;

/**
 * Reads a recover file: every whole record (one ended by its newline), skipping a record cut
 * short at the end and whole lines that are not records (listed in `damaged`).
 * @throws DispyError `DISPY_ERR_RECOVER_FILE`, naming the file, when it is missing or cannot be
 *   read, is not a recover file, its header is cut short, or it was written by a newer release
 */
export async function readRecoverFile(file: string): Promise<RecoverFileContents> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new DispyError(
      ErrorCode.RECOVER_FILE,
      missing ? `recover file ${file} does not exist` : `recover file ${file} cannot be read: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const fail = (why: string) => new DispyError(ErrorCode.RECOVER_FILE, `recover file ${file} ${why}`);
  const wholeBytes = bytes.lastIndexOf(0x0a) + 1;
  const lines = bytes.toString('utf8', 0, wholeBytes).split('\n');
  lines.pop(); // after the last newline
  if (lines.length === 0) {
    const start = bytes.toString('utf8', 0, Math.min(bytes.length, HEADER_START.length));
    if (HEADER_START.startsWith(start)) throw fail(`is cut short: its header is incomplete (${bytes.length} bytes), so it records nothing`);
    throw fail(`is not a dispy recover file (it does not start with a ${RECOVER_FILE_FORMAT} header)`);
  }
  const header = parseHeader(lines[0]!);
  if (typeof header === 'string') throw fail(header);
  const contents: RecoverFileContents = { path: file, header, nodes: new Map(), jobs: new Map(), wholeBytes, damaged: [] };
  for (let i = 1; i < lines.length; i++) {
    if (!apply(contents, lines[i]!)) contents.damaged.push(i + 1);
  }
  return contents;
}

/** The header, or why the first line is not one. */
function parseHeader(line: string): RecoverFileHeader | string {
  const record = parseObject(line);
  if (!record || record.type !== 'header' || record.format !== RECOVER_FILE_FORMAT) {
    return `is not a dispy recover file (its first line is not a ${RECOVER_FILE_FORMAT} header)`;
  }
  const { version } = record;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) return `has a damaged header: version ${String(version)}`;
  if (version > RECOVER_FILE_VERSION) {
    return `was written by a newer release of dispy (recover file format ${version}); this release reads format ${RECOVER_FILE_VERSION} and older`;
  }
  if (typeof record.computeId !== 'string' || record.computeId === '') return 'has a damaged header: no computeId';
  return {
    type: 'header',
    format: RECOVER_FILE_FORMAT,
    version,
    computeId: record.computeId,
    name: typeof record.name === 'string' ? record.name : '',
    createdAt: typeof record.createdAt === 'string' ? record.createdAt : '',
    client: typeof record.client === 'string' ? record.client : '',
    ...(isObject(record.tls) ? { tls: parseTls(record.tls) } : {}),
  };
}

/** The header's TLS files and fingerprints, as far as they are well formed. */
function parseTls(tls: Record<string, unknown>): RecoverFileTls {
  const parsed: RecoverFileTls = {};
  for (const key of ['cafile', 'certfile', 'keyfile'] as const) {
    const value = tls[key];
    if (typeof value === 'string') parsed[key] = value;
  }
  const { certFingerprint } = tls;
  if (typeof certFingerprint === 'string') parsed.certFingerprint = certFingerprint;
  else if (Array.isArray(certFingerprint)) parsed.certFingerprint = certFingerprint.filter((value) => typeof value === 'string');
  return parsed;
}

/** Applies one record; false when the line is not a valid record. */
function apply(contents: RecoverFileContents, line: string): boolean {
  const record = parseObject(line);
  if (!record) return false;
  if (record.type === 'node') {
    const { node, host, port, name } = record;
    if (!isCount(node) || typeof host !== 'string' || !isCount(port) || port < 1 || port > 65535) return false;
    contents.nodes.set(node, { type: 'node', node, host, port, name: typeof name === 'string' ? name : host });
    return true;
  }
  if (record.type === 'job') {
    const { job, state, node, id } = record;
    if (!isCount(job) || !JOB_STATES.includes(state as JobState)) return false;
    const entry: RecoveredJobEntry = { ...contents.jobs.get(job), job, state: state as JobState };
    if (state === 'running') {
      if (!isCount(node)) return false;
      entry.node = node;
      if (typeof id === 'string' || typeof id === 'number' || typeof id === 'boolean') entry.id = id;
      else delete entry.id;
    }
    contents.jobs.set(job, entry);
    return true;
  }
  return false;
}

function parseObject(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
