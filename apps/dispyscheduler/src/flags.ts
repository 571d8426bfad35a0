import type { SchedulerAppOptions } from './monitored-scheduler.js';
import { cliModule, parseSize, secretFlags, type CliFlag, type CliSpec } from '@dispy/protocol/internal';

/** dispyscheduler's own flags: its spelling, the scheduler option it sets, how its text becomes a value, and its help. */
const TABLE: CliFlag<SchedulerAppOptions>[] = [
  {
    flag: 'nodes',
    short: 'n',
    option: 'nodes',
    kind: 'list',
    arg: 'HOST',
    help: 'a node for every computation: address, host name or pattern such as 192.168.1.*; repeatable (default *: broadcast)',
  },
  {
    flag: 'host',
    short: 'i',
    option: 'hosts',
    kind: 'list',
    arg: 'ADDR',
    help: 'local address, repeatable: the first serves clients and reaches nodes; discovery pings from each (default: every interface)',
  },
  {
    flag: 'ext-host',
    option: 'extHosts',
    kind: 'list',
    arg: 'ADDR',
    help: 'deprecated, no effect: clients connect to the address they are given, and the scheduler opens every connection to nodes',
  },
  {
    flag: 'ipv4-udp-multicast',
    option: 'ipv4UdpMulticast',
    kind: 'boolean',
    help: 'discover nodes by the IPv4 multicast group 239.255.61.59 instead of broadcast (nodes need --ipv4-udp-multicast)',
  },
  {
    flag: 'dispy-port',
    short: 'p',
    option: 'port',
    kind: 'integer',
    arg: 'PORT',
    help: 'UDP port toward the nodes, as a client (default 51347)',
  },
  { flag: 'node-port', option: 'nodePort', kind: 'integer', arg: 'PORT', help: "the nodes' port (default 51348)" },
  { flag: 'scheduler-port', option: 'schedulerPort', kind: 'integer', arg: 'PORT', help: 'TCP port for SharedJobClusters (default 51349)' },
  ...secretFlags<SchedulerAppOptions>({
    flag: 'node-secret',
    option: 'nodeSecret',
    env: ['DISPY_NODE_SECRET'],
    file: 'node-secret-file',
    what: 'secret shared with the nodes',
  }),
  ...secretFlags<SchedulerAppOptions>({
    flag: 'cluster-secret',
    option: 'clusterSecret',
    env: ['DISPY_CLUSTER_SECRET'],
    file: 'cluster-secret-file',
    what: 'secret SharedJobClusters must give',
  }),
  {
    flag: 'node-certfile',
    option: 'nodeCertfile',
    kind: 'string',
    arg: 'FILE',
    help: 'TLS toward nodes: certificate presented to nodes with --require-client-cert (alone, turns TLS toward nodes on)',
  },
  {
    flag: 'node-keyfile',
    option: 'nodeKeyfile',
    kind: 'string',
    arg: 'FILE',
    help: 'TLS toward nodes: key of --node-certfile (default: in --node-certfile)',
  },
  {
    flag: 'node-cafile',
    option: 'nodeCafile',
    kind: 'string',
    arg: 'FILE',
    help: "TLS toward nodes: CA that signed the nodes' certificates (turns TLS toward nodes on)",
  },
  {
    flag: 'node-cert-fingerprint',
    option: 'nodeCertFingerprint',
    kind: 'list',
    arg: 'SHA256',
    help: "TLS toward nodes: pinned SHA-256 fingerprint of a node's self-signed certificate; repeatable (turns TLS toward nodes on)",
  },
  {
    flag: 'cluster-certfile',
    option: 'clusterCertfile',
    kind: 'string',
    arg: 'FILE',
    help: 'TLS toward clients: certificate of this scheduler; the scheduler port then serves TLS only',
  },
  {
    flag: 'cluster-keyfile',
    option: 'clusterKeyfile',
    kind: 'string',
    arg: 'FILE',
    help: 'TLS toward clients: key of --cluster-certfile (default: in --cluster-certfile)',
  },
  {
    flag: 'cluster-cafile',
    option: 'clusterCafile',
    kind: 'string',
    arg: 'FILE',
    help: "TLS toward clients: CA that signed the clients' certificates (default: --cluster-certfile itself)",
  },
  {
    flag: 'require-client-cert',
    option: 'requireClientCert',
    kind: 'boolean',
    help: 'TLS toward clients: SharedJobClusters must present a certificate signed by --cluster-cafile',
  },
  {
    flag: 'pulse-interval',
    option: 'pulseInterval',
    kind: 'number',
    arg: 'SECONDS',
    help: "seconds between the nodes' pulses (default: none)",
  },
  { flag: 'ping-interval', option: 'pingInterval', kind: 'number', arg: 'SECONDS', help: 'seconds between discovery pings' },
  {
    flag: 'zombie-interval',
    option: 'zombieInterval',
    kind: 'number',
    arg: 'MINUTES',
    help: 'minutes the replies a client gone did not collect are kept for recoverJobs, on disk under --dest-path (default 60)',
  },
  {
    flag: 'client-grace',
    option: 'clientGrace',
    kind: 'number',
    arg: 'SECONDS',
    help: "seconds a client's computation goes on once its link is lost, for it to reconnect; then it is closed (default 60)",
  },
  {
    flag: 'msg-timeout',
    option: 'msgTimeout',
    kind: 'number',
    arg: 'SECONDS',
    help: 'seconds between heartbeats on client connections; a client silent for 4 of them is presumed dead (default 10)',
  },
  {
    flag: 'cleanup-nodes',
    option: 'cleanupNodes',
    kind: 'boolean',
    help: "nodes always remove a computation's files, whatever its cleanup says",
  },
  { flag: 'clean', option: 'clean', kind: 'boolean', help: "remove the scheduler's directory of files (--dest-path) at start" },
  {
    flag: 'dest-path',
    option: 'destPath',
    kind: 'string',
    arg: 'DIR',
    help: "directory of the clients' depends files and of the replies kept for clients gone (default: under the temp dir)",
  },
  {
    flag: 'max-file-size',
    option: 'maxFileSize',
    kind: 'string',
    parse: parseSize,
    arg: 'SIZE',
    help: 'largest file a client may send through the scheduler (depends, sendFile), e.g. 10m, 1g (0: no limit; default 10m)',
  },
  {
    flag: 'cooperative',
    option: 'cooperative',
    kind: 'boolean',
    help: 'clients may change the CPUs their computation uses on shared nodes (setNodeCpus, NodeAllocate cpus)',
  },
  {
    flag: 'httpd',
    option: 'httpd',
    kind: 'boolean',
    help: 'serve the monitor page of every computation (a live web page; see --httpd-port, --httpd-host, --httpd-token)',
  },
  { flag: 'httpd-port', option: 'httpdPort', kind: 'integer', arg: 'PORT', help: 'port of the monitor page (default 8181)' },
  {
    flag: 'httpd-host',
    option: 'httpdHost',
    kind: 'string',
    arg: 'ADDR',
    help: 'address of the monitor page (default 127.0.0.1; another needs --httpd-token)',
  },
  ...secretFlags<SchedulerAppOptions>({
    flag: 'httpd-token',
    option: 'httpdToken',
    env: ['DISPY_HTTPD_TOKEN'],
    file: 'httpd-token-file',
    what: 'token the monitor page asks for (open it once with ?token=)',
  }),
];

/** Python dispy's dispyscheduler flags that this one does not have, with what to do instead. */
export const DISPY_ONLY_FLAGS: Readonly<Record<string, string>> = {
  node: 'spelled -n/--nodes HOST here (repeatable)',
  port: 'spelled -p/--dispy-port PORT here',
  'dest-path-prefix': "replaced by --dest-path DIR (the scheduler's own directory, used as given)",
  'fair-cluster-scheduler': 'not needed here: computations of equal priority take turns on each node (fair share)',
  'early-cluster-scheduler': 'not supported: computations of equal priority take turns on each node (fair share)',
};

/** dispyscheduler's command line. */
export const CLI: CliSpec<SchedulerAppOptions> = {
  app: 'dispyscheduler',
  flags: TABLE,
  dispyOnly: DISPY_ONLY_FLAGS,
  commands: 'status, quit',
  pathOptions: ['nodeKeyfile', 'nodeCertfile', 'nodeCafile', 'clusterKeyfile', 'clusterCertfile', 'clusterCafile'],
  help: {
    intro: [
      'Runs a shared dispy scheduler: it finds and manages the nodes, and runs the computations of',
      'SharedJobCluster programs on them side by side.',
    ],
    underscoreExample: '--node_secret',
    footer: [
      'Secrets: DISPY_NODE_SECRET and DISPY_CLUSTER_SECRET (or --node-secret-file, --cluster-secret-file). Without --daemon, type "status" or "quit" on stdin.',
      'SIGINT/SIGTERM stop it cleanly: the computations are closed and their running jobs terminated.',
    ],
    column: 32,
  },
};

/** Every flag (the common ones included), parseFlags, saveConfig (without the secrets) and helpText. */
export const { FLAGS, parseFlags, saveConfig, helpText } = cliModule(CLI);
