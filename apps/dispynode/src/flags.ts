import type { NodeOptions } from '@dispy/node';
import { nodeOptionsSchema, parseSize } from '@dispy/node';
import { cliModule, secretFlags, secretWarning, type CliFlag, type CliSpec } from '@dispy/protocol/internal';

/** The flag table; descriptions come from the option schema unless the flag has its own. */
const TABLE: (Omit<CliFlag<NodeOptions>, 'help'> & { help?: string })[] = [
  { flag: 'cpus', short: 'c', option: 'cpus', kind: 'integer', arg: 'N' },
  { flag: 'host', short: 'i', option: 'hosts', kind: 'list', arg: 'ADDR' },
  { flag: 'dispy-port', short: 'p', option: 'port', kind: 'integer', arg: 'PORT' },
  { flag: 'name', option: 'name', kind: 'string', arg: 'NAME' },
  { flag: 'dest-path-prefix', option: 'destPathPrefix', kind: 'string', arg: 'DIR' },
  ...secretFlags<NodeOptions>({
    flag: 'secret',
    short: 's',
    option: 'secret',
    env: ['DISPY_SECRET', 'DISPY_NODE_SECRET'],
    file: 'secret-file',
    what: 'shared secret clients must prove',
  }),
  { flag: 'certfile', option: 'certfile', kind: 'string', arg: 'FILE' },
  { flag: 'keyfile', option: 'keyfile', kind: 'string', arg: 'FILE' },
  { flag: 'cafile', option: 'cafile', kind: 'string', arg: 'FILE' },
  { flag: 'require-client-cert', option: 'requireClientCert', kind: 'boolean' },
  { flag: 'ext-host', option: 'extHosts', kind: 'list', arg: 'ADDR' },
  { flag: 'ipv4-udp-multicast', option: 'ipv4UdpMulticast', kind: 'boolean' },
  { flag: 'serve', option: 'serve', kind: 'integer', arg: 'N' },
  { flag: 'max-clients', option: 'maxClients', kind: 'integer', arg: 'N' },
  { flag: 'service-start', option: 'serviceStart', kind: 'string', arg: 'HH:MM' },
  { flag: 'service-stop', option: 'serviceStop', kind: 'string', arg: 'HH:MM' },
  { flag: 'service-end', option: 'serviceEnd', kind: 'string', arg: 'HH:MM' },
  { flag: 'client-shutdown', option: 'clientShutdown', kind: 'boolean' },
  { flag: 'zombie-interval', option: 'zombieInterval', kind: 'number', arg: 'MINUTES' },
  { flag: 'heartbeat-interval', option: 'heartbeatInterval', kind: 'number', arg: 'SECONDS' },
  { flag: 'clean', option: 'clean', kind: 'boolean' },
  {
    flag: 'max-file-size',
    option: 'maxFileSize',
    kind: 'string',
    parse: parseSize,
    arg: 'SIZE',
    help: 'largest file transferred, e.g. 10m, 1g (0: no limit; default 10m)',
  },
  {
    flag: 'max-output-size',
    option: 'maxOutputSize',
    kind: 'string',
    parse: parseSize,
    arg: 'SIZE',
    help: "cap on each of a job's stdout, stderr and exception text, e.g. 1m, 200k; the rest is cut, with a marker (0: no cap; default 1m)",
  },
  { flag: 'scheduler-host', option: 'schedulerHost', kind: 'string', arg: 'HOST[:PORT]' },
  { flag: 'ping-interval', option: 'pingInterval', kind: 'number', arg: 'SECONDS' },
];

/** The description of a schema field, also through .optional(). */
function describe(option: string | undefined): string {
  const field = option
    ? (nodeOptionsSchema.shape as Record<string, { description?: string; _def?: { innerType?: { description?: string } } }>)[option]
    : undefined;
  return field?.description ?? field?._def?.innerType?.description ?? '';
}

/**
 * Python dispy's dispynode flags that this one does not have, with what to do instead: whether
 * each is coming, replaced (by what), or not needed here.
 */
export const DISPY_ONLY_FLAGS: Readonly<Record<string, string>> = {
  'admin-secret':
    "not supported yet (dispy's remote administration, dispyadmin, does not exist here): control the node from its stdin " +
    '(status, cpus N, stop, start, release, quit) or with signals',
  init:
    'not needed here: a computation brings what its jobs need (depends, setup); a module the node should offer every ' +
    'computation goes in node_modules beside the node',
  'msg-timeout': 'replaced by --heartbeat-interval SECONDS (a link silent for 4 intervals is presumed dead)',
  'force-cleanup': "not supported: each cluster's cleanup option decides; --clean at start removes what computations left",
  'unsafe-setup': 'not needed here: setup always runs in the worker processes, never in the node process',
};

/** dispynode's command line. */
export const CLI: CliSpec<NodeOptions> = {
  app: 'dispynode',
  flags: TABLE.map((f) => ({ ...f, help: f.help ?? describe(f.option) })),
  dispyOnly: DISPY_ONLY_FLAGS,
  commands: 'status, cpus N, stop, start, release, quit',
  negativeNumbers: true,
  help: {
    intro: [
      'Runs a dispy node: answers discovery from dispy clients on the network and runs the',
      'computations they send, one worker process per CPU.',
    ],
    underscoreExample: '--dest_path_prefix',
    footer: ['Without --daemon, type "status", "cpus N" or "quit" on stdin. SIGINT/SIGTERM stop the node cleanly.'],
    column: 30,
  },
};

/** Every flag (the common ones included), parseFlags, saveConfig (without the secret) and helpText. */
export const { FLAGS, parseFlags, saveConfig, helpText } = cliModule(CLI);

/** The warning printed when the secret is given on the command line. */
export const SECRET_ON_COMMAND_LINE = secretWarning(FLAGS.find((f) => f.flag === 'secret')!);
