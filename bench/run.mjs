// The benchmark suite behind `pnpm bench`: runs each section one after the other (never two at
// once, so they do not compete for the CPUs), each in a fresh process, then prints one report with
// the measurements, the ratios between them, and the performance targets with PASS/MISS.
//
// To add a benchmark: write a module under sections/ whose default export is
// `{ id, title, run() }`, where run() resolves to an array of metrics
// `{ key, label, value, unit, digits, note }`; list it in sections/index.mjs; and add any ratio or
// target that uses its keys to COMPARISONS or TARGETS below.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { SECTIONS as ALL_SECTIONS } from './sections/index.mjs';
import { formatNumber, formatTable } from './lib/table.mjs';
import { now } from './lib/timing.mjs';

const SECTION_PROCESS = fileURLToPath(new URL('./processes/run-section.mjs', import.meta.url));

/** `pnpm bench dispy-file tcp-transfer` runs only the sections with those ids (all by default). */
const SECTIONS = selectSections(process.argv.slice(2));

function selectSections(ids) {
  if (ids.length === 0) return ALL_SECTIONS;
  const known = new Map(ALL_SECTIONS.map((section) => [section.id, section]));
  const unknown = ids.filter((id) => !known.has(id));
  if (unknown.length > 0) {
    process.stderr.write(`bench: no section ${unknown.join(', ')}; the sections are ${[...known.keys()].join(', ')}\n`);
    process.exit(2);
  }
  return ids.map((id) => known.get(id));
}

/** Python dispy 4.15 on this kind of machine, for reference only (not measured here). */
const PYTHON_DISPY = { jobsPerSecond: 250, latencyMs: [5, 6], argumentMiBPerSecond: 136 };

/** Ratios printed under the measurements; `value(m)` gets metric values by key. */
const COMPARISONS = [
  {
    label: 'dispy throughput ÷ piscina throughput',
    value: (m) => m('dispy.throughput') / m('piscina.throughput'),
    digits: 3,
    unit: '×',
  },
  {
    label: 'dispy median latency ÷ TCP median RTT',
    value: (m) => (m('dispy.latency.median') * 1000) / m('tcp.rtt.median'),
    digits: 1,
    unit: '×',
  },
  {
    label: 'dispy throughput ÷ Python dispy 4.15 (~250 jobs/s)',
    value: (m) => m('dispy.throughput') / PYTHON_DISPY.jobsPerSecond,
    digits: 1,
    unit: '×',
  },
  {
    label: 'dispy file transfer ÷ raw loopback TCP',
    value: (m) => m('dispy.file.rate') / m('tcp.transfer.rate'),
    digits: 3,
    unit: '×',
  },
  {
    label: 'dispy file transfer ÷ plain Node checked transfer (sha256 both sides, to disk)',
    value: (m) => m('dispy.file.rate') / m('pipeline.file.rate'),
    digits: 3,
    unit: '×',
  },
  {
    label: 'plain Node checked transfer ÷ raw loopback TCP (the most a checked transfer gets here)',
    value: (m) => m('pipeline.file.rate') / m('tcp.transfer.rate'),
    digits: 3,
    unit: '×',
  },
  {
    label: 'dispy 1 MiB-argument throughput ÷ raw loopback TCP',
    value: (m) => m('dispy.args.rate') / m('tcp.transfer.rate'),
    digits: 3,
    unit: '×',
  },
  {
    label: `dispy 1 MiB-argument throughput ÷ Python dispy (~${PYTHON_DISPY.argumentMiBPerSecond} MiB/s)`,
    value: (m) => m('dispy.args.rate') / PYTHON_DISPY.argumentMiBPerSecond,
    digits: 1,
    unit: '×',
  },
];

/** Targets; `pass(value)` decides PASS or MISS, and a missing measurement is a MISS. */
const TARGETS = [
  {
    label: 'throughput through dispyscheduler ≥ 0.7× JobCluster',
    value: (m) => m('shared.throughput') / m('jobcluster.throughput'),
    digits: 3,
    unit: '×',
    pass: (value) => value >= 0.7,
  },
  {
    label: 'throughput ≥ 0.2× piscina',
    value: (m) => m('dispy.throughput') / m('piscina.throughput'),
    digits: 3,
    unit: '×',
    pass: (value) => value >= 0.2,
  },
  {
    label: 'sequential latency median < 1 ms',
    value: (m) => m('dispy.latency.median'),
    digits: 3,
    unit: 'ms',
    pass: (value) => value < 1,
  },
  {
    label: 'file transfer ≥ 0.5× raw loopback TCP',
    value: (m) => m('dispy.file.rate') / m('tcp.transfer.rate'),
    digits: 3,
    unit: '×',
    pass: (value) => value >= 0.5,
  },
  {
    label: '1 MiB arguments ≥ 0.5× raw loopback TCP',
    value: (m) => m('dispy.args.rate') / m('tcp.transfer.rate'),
    digits: 3,
    unit: '×',
    pass: (value) => value >= 0.5,
  },
  {
    label: 'protected channel: small-job throughput ≥ 0.8× plain frames',
    value: (m) => m('channel.tiny.ratio'),
    digits: 3,
    unit: '×',
    pass: (value) => value >= 0.8,
  },
  {
    label: 'protected channel: 1 MiB arguments ≥ 0.7× plain frames',
    value: (m) => m('channel.big.ratio'),
    digits: 3,
    unit: '×',
    pass: (value) => value >= 0.7,
  },
  {
    label: 'protected channel: files ≥ 0.7× plain frames',
    value: (m) => m('channel.files.ratio'),
    digits: 3,
    unit: '×',
    pass: (value) => value >= 0.7,
  },
  {
    label: 'recover file on: tiny-job throughput ≥ 0.9× without it',
    value: (m) => m('dispy.recover.ratio'),
    digits: 3,
    unit: '×',
    pass: (value) => value >= 0.9,
  },
  {
    label: 'two JobClusters sharing one node: together ≥ 0.9× one alone',
    value: (m) => m('dispy.shared.ratio'),
    digits: 3,
    unit: '×',
    pass: (value) => value >= 0.9,
  },
  {
    label: 'TLS: small-job throughput ≥ 0.8× plain frames',
    value: (m) => m('tls.tiny.ratio'),
    digits: 3,
    unit: '×',
    pass: (value) => value >= 0.8,
  },
  {
    label: 'TLS: 1 MiB arguments ≥ 0.7× plain frames',
    value: (m) => m('tls.big.ratio'),
    digits: 3,
    unit: '×',
    pass: (value) => value >= 0.7,
  },
  {
    label: 'TLS: files ≥ 0.7× plain frames',
    value: (m) => m('tls.files.ratio'),
    digits: 3,
    unit: '×',
    pass: (value) => value >= 0.7,
  },
  {
    label: 'dispynode memory growth while a 200 MiB file arrives < 50 MiB (¼ of the file)',
    value: (m) => m('dispy.file.memory.node'),
    digits: 0,
    unit: 'MiB',
    pass: (value) => value < 50,
  },
  {
    label: 'client memory growth while it sends a 200 MiB file < 50 MiB (¼ of the file)',
    value: (m) => m('dispy.file.memory.client'),
    digits: 0,
    unit: 'MiB',
    pass: (value) => value < 50,
  },
];

/** How long the process may linger after the report before it is made to exit. */
const EXIT_GRACE_MS = 3_000;

/** The process of the section running now. */
let running;

// Ctrl-C reaches the section's process too (same process group), whose exit hook stops its
// nodes; wait for it (bounded), then exit.
process.once('SIGINT', () => {
  progress('bench: interrupted; stopping');
  const bound = new Promise((resolve) => setTimeout(resolve, EXIT_GRACE_MS * 2).unref());
  const stopped = running ? once(running, 'exit') : Promise.resolve();
  void Promise.race([stopped, bound]).finally(() => {
    running?.kill('SIGKILL');
    process.exit(130);
  });
});

function progress(text) {
  process.stderr.write(`${text}\n`);
}

async function runSections() {
  const metrics = [];
  const failures = [];
  for (const section of SECTIONS) {
    progress(`bench: ${section.title} ...`);
    const start = now();
    try {
      const results = await runInOwnProcess(section);
      for (const metric of results) metrics.push({ ...metric, section: section.id });
      progress(`bench:   done in ${((now() - start) / 1000).toFixed(1)} s`);
    } catch (error) {
      // One failing section must not hide the others' figures; it is reported below instead.
      failures.push({ section, error });
      progress(`bench:   FAILED after ${((now() - start) / 1000).toFixed(1)} s: ${error.message.split('\n')[0]}`);
    }
  }
  return { metrics, failures };
}

/** The section's metrics, measured in a fresh process; rejects with its error. */
async function runInOwnProcess(section) {
  const child = fork(SECTION_PROCESS, [section.id], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  running = child;
  try {
    let answer;
    child.on('message', (message) => (answer = message));
    const [code, signal] = await once(child, 'exit');
    if (answer?.metrics) return answer.metrics;
    const error = new Error(answer?.error ?? `the section's process exited (${signal ?? `code ${code}`}) without a result`);
    // The child's stack is the useful one.
    error.stack = error.message;
    throw error;
  } finally {
    running = undefined;
  }
}

function machineLine() {
  const cpus = os.cpus();
  const model = cpus[0]?.model?.trim() ?? 'unknown CPU';
  return `Node ${process.version}, ${os.platform()}-${os.arch()}, ${cpus.length} logical CPUs (${model})`;
}

function report({ metrics, failures }, elapsedMs) {
  const byKey = new Map(metrics.map((metric) => [metric.key, metric.value]));
  const m = (key) => byKey.get(key) ?? Number.NaN;
  const out = [];

  out.push('', `dispy-ts benchmark: ${new Date().toISOString()}`, machineLine(), '');
  out.push(
    formatTable(
      ['Measurement', 'Value', 'Unit', 'Detail'],
      metrics.map((metric) => [metric.label, formatNumber(metric.value, metric.digits), metric.unit, metric.note ?? '']),
      { alignRight: [1] },
    ),
  );

  out.push('');
  out.push(
    formatTable(
      ['Ratio', 'Value'],
      COMPARISONS.map((c) => [c.label, `${formatNumber(c.value(m), c.digits)}${c.unit}`]),
      { alignRight: [1] },
    ),
  );

  out.push('');
  out.push(
    formatTable(
      ['Target', 'Measured', 'Result'],
      TARGETS.map((t) => {
        const value = t.value(m);
        const verdict = Number.isFinite(value) ? (t.pass(value) ? 'PASS' : 'MISS') : 'MISS (not measured)';
        return [t.label, `${formatNumber(value, t.digits)}${t.unit === '×' ? '' : ' '}${t.unit}`, verdict];
      }),
      { alignRight: [1] },
    ),
  );

  out.push(
    '',
    `Reference: Python dispy 4.15 does about ${PYTHON_DISPY.jobsPerSecond} jobs/s with ` +
      `${PYTHON_DISPY.latencyMs.join('–')} ms sequential latency on this kind of machine.`,
    `Reference: Python dispy moves 1 MiB arguments at about ${PYTHON_DISPY.argumentMiBPerSecond} MiB/s here, and sends ` +
      'files stop-and-wait in 1 MB chunks without a checksum.',
    'Transfer rates are in MiB/s (2^20 bytes per second).',
  );

  if (failures.length > 0) {
    out.push('', 'ERRORS (these sections produced no figures):');
    for (const { section, error } of failures) out.push(`  ${section.id}: ${error.stack ?? error.message}`);
  }
  out.push('', `Total benchmark time: ${(elapsedMs / 1000).toFixed(1)} s`, '');
  process.stdout.write(out.join('\n'));
}

const start = now();
const results = await runSections();
report(results, now() - start);

// PASS/MISS never changes the exit code (this is a report); a section that could not measure
// at all does, so a broken build or a hung dispy is not mistaken for a clean run.
process.exitCode = results.failures.length > 0 ? 1 : 0;

// Everything was closed above; if some handle still keeps the event loop alive, say so and
// exit anyway rather than hang. The timer is unref'd, so it never delays a clean exit.
setTimeout(() => {
  progress(`bench: something kept the process alive ${EXIT_GRACE_MS} ms after the report; exiting`);
  process.exit();
}, EXIT_GRACE_MS).unref();
