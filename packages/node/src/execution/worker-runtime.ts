/*
 * Entry point of a worker process: loads one computation once, then runs jobs one at a time
 * as the node process sends them. User code runs only here, never in the node process.
 */
import { createRequire, isBuiltin } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import vm from 'node:vm';
import { decodeValue, encodeValue } from '@dispy/protocol/codec';
import { OutputCapture } from './output-capture.js';
import { installTranspilerHelpers } from './transpiler-helpers.js';
import type { FromWorker, ToWorker, WorkerInit, WorkerJob } from './worker-messages.js';

const runtimeRequire = createRequire(import.meta.url);
const capture = new OutputCapture();
let computation: ((...args: unknown[]) => unknown) | undefined;
let currentJob: number | undefined;
const queue: WorkerJob[] = [];
let draining = false;

function send(message: FromWorker): void {
  process.send!(message);
}

function describeError(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return `thrown value: ${typeof error === 'string' ? error : JSON.stringify(error) ?? String(error)}`;
}

/** require() for computations: the computation's directory first, then the node's packages. */
function makeRequire(computeDir: string): NodeJS.Require {
  const local = createRequire(path.join(computeDir, 'computation.js'));
  const dispyRequire = ((id: string) => {
    try {
      return local(id);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw error;
      return runtimeRequire(id);
    }
  }) as NodeJS.Require;
  return Object.assign(dispyRequire, { resolve: local.resolve, cache: local.cache, main: undefined });
}

/** import() for computations (the client rewrites `import(x)` to call this). */
function makeImport(computeDir: string, localRequire: NodeJS.Require) {
  return async (specifier: string): Promise<unknown> => {
    if (isBuiltin(specifier)) return import(specifier);
    if (specifier.startsWith('.') || path.isAbsolute(specifier)) {
      return import(pathToFileURL(path.resolve(computeDir, specifier)).href);
    }
    if (specifier.startsWith('file:')) return import(specifier);
    let resolved: string | undefined;
    try {
      resolved = localRequire.resolve(specifier, { paths: [computeDir] });
    } catch {
      // not in the computation's directory: the node's own packages below
    }
    return resolved ? import(pathToFileURL(resolved).href) : import(specifier);
  };
}

function init(message: WorkerInit): void {
  const { computeDir } = message;
  const computeRequire = makeRequire(computeDir);
  const dispyImport = makeImport(computeDir, computeRequire);
  const globals: Record<string, unknown> = {
    require: computeRequire,
    __dispy_import: dispyImport,
    // vitest (Vite SSR) rewrites import() in test files to this helper.
    __vite_ssr_dynamic_import__: dispyImport,
    __filename: path.join(computeDir, `${message.name}.js`),
    __dirname: computeDir,
    module: { exports: {} },
    dispy_node_name: message.nodeName,
    dispy_node_ip_addr: message.nodeAddress,
    dispy_job_path: computeDir,
    // Asks the node to stop once this client is done; honoured only with --client-shutdown.
    dispynode_shutdown: () => send({ type: 'shutdown-request' }),
  };
  for (const [name, value] of Object.entries(globals)) {
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true });
  }
  installTranspilerHelpers();
  process.chdir(computeDir);
  try {
    const script = new vm.Script(`(${message.source})`, {
      filename: path.join(computeDir, `${message.name}.js`),
    });
    const fn = script.runInThisContext();
    if (typeof fn !== 'function') throw new TypeError('the computation did not evaluate to a function');
    // A named computation may call itself by name (recursion through a global binding).
    if (!(message.name in globalThis)) (globalThis as Record<string, unknown>)[message.name] = fn;
    computation = fn;
  } catch (error) {
    send({ type: 'init-failed', error: describeError(error) });
    return;
  }
  send({ type: 'ready' });
}

async function runJob(message: WorkerJob): Promise<void> {
  currentJob = message.jobId;
  const startTime = Date.now();
  const cpuStart = process.cpuUsage();
  capture.start();
  let ok = true;
  let result: Uint8Array | undefined;
  let exception: string | undefined;
  try {
    const args = decodeValue(message.args) as unknown[];
    const value = await computation!(...args);
    result = encodeValue(value, 'the result');
  } catch (error) {
    ok = false;
    exception = describeError(error);
  }
  const output = capture.stop();
  const cpu = process.cpuUsage(cpuStart);
  currentJob = undefined;
  send({
    type: 'done',
    jobId: message.jobId,
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
  if (jobId !== undefined) {
    const now = Date.now();
    process.send!(
      { type: 'done', jobId, ok: false, exception: describeError(error), ...output, startTime: now, endTime: now, cpuTime: 0 } satisfies FromWorker,
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
/** Runs queued jobs one at a time, each result sent as soon as it is known. */
async function drain(): Promise<void> {
  if (draining) return;
  draining = true;
  for (let job = queue.shift(); job; job = queue.shift()) await runJob(job);
  draining = false;
}

/** The node cancelled a job it sent; if it has started already, it runs to its end. */
function drop(jobId: number): void {
  const index = queue.findIndex((job) => job.jobId === jobId);
  if (index >= 0) queue.splice(index, 1);
}

process.on('message', (message: ToWorker) => {
  if (message.type === 'init') init(message);
  else if (message.type === 'jobs') {
    queue.push(...message.jobs);
    void drain();
  } else if (message.type === 'drop') drop(message.jobId);
});
