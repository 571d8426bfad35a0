/*
 * Entry point of a worker process: loads one computation once, then runs jobs one at a time
 * as the node process sends them. User code runs only here, never in the node process.
 */
import { createRequire, isBuiltin } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import vm from 'node:vm';
import { MAX_VALUE_BYTES, decodeValue, encodeValue, registerClass } from '@dispy/protocol/codec';
import { OutputCapture } from './output-capture.js';
import { DEFAULT_MAX_OUTPUT_BYTES, capText } from './output-limit.js';
import { JOB_MARK_VARIABLE, NODE_MARK_VARIABLE, jobMark } from './process-marks.js';
import { markSpawns, takeSpawned, watchSpawns } from './spawn-watch.js';
import { installTranspilerHelpers } from './transpiler-helpers.js';
import { readJobChannel } from './job-channel.js';
import type { Definition, FromWorker, ToWorker, WorkerInit, WorkerJob } from './worker-messages.js';
import { confineModuleImports, confineModules } from './module-confinement.js';

/** A job received on the job channel, with its encoded arguments. */
interface QueuedJob extends WorkerJob {
  args: Uint8Array;
}

const runtimeRequire = createRequire(import.meta.url);
const capture = new OutputCapture();
let computation: ((...args: unknown[]) => unknown) | undefined;
let currentJob: number | undefined;
let computeDir = process.cwd();
/** Cap on each of a job's stdout, stderr and exception text, in bytes (0: none). */
let maxOutputBytes = DEFAULT_MAX_OUTPUT_BYTES;
/** This node process's mark, which the node gave this worker (process-marks.ts). */
const nodeMark = process.env[NODE_MARK_VARIABLE] ?? '';
let nextRequest = 1;
const sendFileRequests = new Map<number, { resolve: (value: number) => void; reject: (error: Error) => void }>();
const queue: QueuedJob[] = [];
let draining = false;
/** An error escaped a job: finish nothing more, the worker is about to exit. */
let dying = false;

function send(message: FromWorker): void {
  process.send!(message);
}

function describeError(error: unknown): string {
  const text =
    error instanceof Error
      ? (error.stack ?? `${error.name}: ${error.message}`)
      : `thrown value: ${typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error))}`;
  return capText(text, maxOutputBytes, 'exception');
}

/**
 * require() for computations: `node_modules` in the computation's directory (never above it),
 * then the node's own packages.
 */
function makeRequire(computeDir: string): NodeJS.Require {
  confineModules(computeDir);
  const local = createRequire(path.join(computeDir, 'computation.js'));
  const dispyRequire = ((id: string) => {
    // A module of the computation's directory may import() others (ES modules): confine those too.
    if (!isBuiltin(id) && (!isBare(id) || existsSync(path.join(computeDir, 'node_modules')))) confineModuleImports();
    try {
      return local(id) as unknown;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw error;
      return runtimeRequire(id) as unknown;
    }
  }) as NodeJS.Require;
  return Object.assign(dispyRequire, { resolve: local.resolve, cache: local.cache, main: undefined });
}

/** A package name, not a path or a URL. */
const isBare = (id: string) => !id.startsWith('.') && !path.isAbsolute(id) && !id.includes(':');

/** import() for computations (the client rewrites `import(x)` to call this). */
function makeImport(computeDir: string, localRequire: NodeJS.Require) {
  return async (specifier: string): Promise<unknown> => {
    if (isBuiltin(specifier)) return import(specifier);
    if (specifier.startsWith('.') || path.isAbsolute(specifier)) {
      confineModuleImports();
      return import(pathToFileURL(path.resolve(computeDir, specifier)).href);
    }
    if (specifier.startsWith('file:')) {
      confineModuleImports();
      return import(specifier);
    }
    let resolved: string | undefined;
    try {
      resolved = localRequire.resolve(specifier, { paths: [computeDir] });
    } catch {
      // not in the computation's directory: the node's own packages below
    }
    if (!resolved) return import(specifier);
    confineModuleImports();
    return import(pathToFileURL(resolved).href);
  };
}

/** Evaluates a shipped function or class and defines it as a global of its name. */
function define(definition: Definition, dir: string): unknown {
  const value: unknown = new vm.Script(`(${definition.source})`, { filename: path.join(dir, `${definition.name}.js`) }).runInThisContext();
  Object.defineProperty(globalThis, definition.name, { value, writable: true, configurable: true });
  if (typeof value === 'function' && /^class[\s{]/.test(Function.prototype.toString.call(value))) registerClass(definition.name, value);
  return value;
}

/** dispyProvisionalResult(value): sends an intermediate result of the running job. */
function provisionalResult(value: unknown): Promise<number> {
  const jobId = currentJob;
  if (jobId === undefined) return Promise.reject(new Error('dispyProvisionalResult is only for a running job'));
  const result = encodeValue(value, 'the provisional result');
  if (result.length > MAX_VALUE_BYTES) {
    return Promise.reject(
      new RangeError(`the provisional result encodes to ${result.length} bytes, over the ${MAX_VALUE_BYTES}-byte limit of one message`),
    );
  }
  return new Promise((resolve) => process.send!({ type: 'provisional', jobId, result } satisfies FromWorker, () => resolve(0)));
}

/** dispySendFile(path): the node streams the file to the client; resolves 0 when it arrived. */
function sendFile(file: string): Promise<number> {
  const jobId = currentJob;
  if (jobId === undefined) return Promise.reject(new Error('dispySendFile is only for a running job'));
  const requestId = nextRequest++;
  return new Promise((resolve, reject) => {
    sendFileRequests.set(requestId, { resolve, reject });
    send({ type: 'send-file', requestId, jobId, path: path.resolve(computeDir, file) });
  });
}

async function init(message: WorkerInit): Promise<void> {
  computeDir = message.computeDir;
  maxOutputBytes = message.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const computeRequire = makeRequire(computeDir);
  const dispyImport = makeImport(computeDir, computeRequire);
  const moduleObject = { exports: {} };
  const globals: Record<string, unknown> = {
    require: computeRequire,
    __dispy_import: dispyImport,
    // vitest (Vite SSR) rewrites import() in test files to this helper.
    __vite_ssr_dynamic_import__: dispyImport,
    __filename: path.join(computeDir, `${message.name}.js`),
    __dirname: computeDir,
    module: moduleObject,
    exports: moduleObject.exports,
    dispy_node_name: message.nodeName,
    dispy_node_ip_addr: message.nodeAddress,
    dispy_job_path: computeDir,
    dispyProvisionalResult: provisionalResult,
    dispy_provisional_result: provisionalResult,
    dispySendFile: sendFile,
    dispy_send_file: sendFile,
    // Asks the node to stop once this client is done; honoured only with --client-shutdown.
    dispynode_shutdown: () => send({ type: 'shutdown-request' }),
  };
  for (const [name, value] of Object.entries(globals)) {
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true });
  }
  installTranspilerHelpers();
  process.chdir(computeDir);
  try {
    if (message.values) {
      for (const [name, value] of Object.entries(decodeValue(message.values) as Record<string, unknown>)) {
        Object.defineProperty(globalThis, name, { value, writable: true, configurable: true });
      }
    }
    for (const definition of message.definitions) define(definition, computeDir);
    if (message.setup) {
      const setup = define(message.setup, computeDir) as (...args: unknown[]) => unknown;
      const args = message.setupArgs ? (decodeValue(message.setupArgs) as unknown[]) : [];
      const status = await setup(...args);
      if (status !== 0 && status !== undefined) throw new Error(`setup returned ${JSON.stringify(status)}, not 0`);
    }
    const script = new vm.Script(`(${message.source})`, {
      filename: path.join(computeDir, `${message.name}.js`),
    });
    const fn: unknown = script.runInThisContext();
    if (typeof fn !== 'function') throw new TypeError('the computation did not evaluate to a function');
    // A named computation may call itself by name (recursion through a global binding).
    if (!(message.name in globalThis)) (globalThis as Record<string, unknown>)[message.name] = fn;
    computation = fn as (...args: unknown[]) => unknown;
  } catch (error) {
    send({ type: 'init-failed', error: describeError(error) });
    return;
  }
  send({ type: 'ready' });
}

async function runJob(message: QueuedJob): Promise<void> {
  currentJob = message.jobId;
  const startTime = Date.now();
  const cpuStart = process.cpuUsage();
  capture.start(maxOutputBytes);
  // Carried by whatever the job starts, which the node kills when the job ends (process-marks.ts).
  markSpawns({ [NODE_MARK_VARIABLE]: nodeMark, [JOB_MARK_VARIABLE]: jobMark(nodeMark, process.pid, message.jobId) });
  takeSpawned();
  let ok = true;
  let result: Uint8Array | undefined;
  let exception: string | undefined;
  const perJob = message.definitions ?? [];
  try {
    for (const definition of perJob) define(definition, computeDir);
    const args = (decodeValue(message.args) as unknown[] | undefined) ?? [];
    const value = await computation!(...args);
    result = encodeValue(value, 'the result');
    if (result.length > MAX_VALUE_BYTES) {
      throw new RangeError(
        `the result encodes to ${result.length} bytes, over the ${MAX_VALUE_BYTES}-byte limit of one message; write it to a file and send it with dispySendFile`,
      );
    }
  } catch (error) {
    ok = false;
    result = undefined;
    exception = describeError(error);
  }
  // Per-job depends last only as long as their job.
  for (const { name } of perJob) delete (globalThis as Record<string, unknown>)[name];
  const output = capture.stop();
  const cpu = process.cpuUsage(cpuStart);
  currentJob = undefined;
  markSpawns(undefined);
  send({
    type: 'done',
    jobId: message.jobId,
    spawned: takeSpawned(),
    ok,
    result,
    exception,
    stdout: output.stdout,
    stderr: output.stderr,
    startTime,
    endTime: Date.now(),
    cpuTime: (cpu.user + cpu.system) / 1e6,
  });
}

// An error escaping a job (a callback thrown later, an unhandled rejection) ends that job as
// Terminated; the worker then exits, since its state can no longer be trusted, and is replaced.
function fatal(error: unknown): void {
  const output = capture.stop();
  const jobId = currentJob;
  dying = true;
  if (jobId !== undefined) {
    const now = Date.now();
    process.send!(
      {
        type: 'done',
        jobId,
        ok: false,
        fatal: true,
        spawned: takeSpawned(),
        exception: describeError(error),
        ...output,
        startTime: now,
        endTime: now,
        cpuTime: 0,
      } satisfies FromWorker,
      () => process.exit(70),
    );
  } else {
    process.stderr.write(`dispy worker: uncaught error outside a job: ${describeError(error)}\n`);
    process.exit(70);
  }
}

process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);
// The node process going away (crash, SIGKILL) closes the IPC channel: leave with it.
process.on('disconnect', () => process.exit(0));
capture.install();
watchSpawns();
/** Runs queued jobs one at a time, each result sent as soon as it is known. */
async function drain(): Promise<void> {
  if (draining) return;
  draining = true;
  for (let job = queue.shift(); job && !dying; job = queue.shift()) await runJob(job);
  draining = false;
}

/** The node cancelled a job it sent; if it has started already, it runs to its end. */
function drop(jobId: number): void {
  const index = queue.findIndex((job) => job.jobId === jobId);
  if (index >= 0) queue.splice(index, 1);
}

async function cleanup(definition: Definition): Promise<void> {
  try {
    const fn = define(definition, computeDir) as () => unknown;
    await fn();
    send({ type: 'cleanup-done' });
  } catch (error) {
    send({ type: 'cleanup-done', error: describeError(error) });
  }
}

process.on('message', (message: ToWorker) => {
  if (message.type === 'init') void init(message);
  else if (message.type === 'cleanup') void cleanup(message.cleanup);
  else if (message.type === 'send-file-done') {
    const request = sendFileRequests.get(message.requestId);
    sendFileRequests.delete(message.requestId);
    if (message.error) request?.reject(new Error(`dispySendFile: ${message.error}`));
    else request?.resolve(0);
  }
});

/** The node takes back a job it sent, if it has not started: says whether it was dropped. */
function reclaim(jobId: number): void {
  const index = queue.findIndex((job) => job.jobId === jobId);
  if (index >= 0) queue.splice(index, 1);
  send({ type: 'reclaimed', jobId, dropped: index >= 0 });
}

readJobChannel((message, args) => {
  if (message.type === 'job') {
    queue.push({ ...message, args });
    void drain();
  } else if (message.type === 'reclaim') reclaim(message.jobId);
  else drop(message.jobId);
})
  // Without its job channel a worker can take no job: leave, and the node replaces it.
  .on('error', () => undefined)
  .on('close', () => process.exit(0));
