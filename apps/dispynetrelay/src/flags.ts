import type { DispyNetRelayOptions } from '@dispy/netrelay';
import { cliModule, secretFlags, secretWarning, type CliFlag, type CliSpec } from '@dispy/protocol/internal';

/** dispynetrelay's own flags: its spelling, the relay option it sets, how its text becomes a value, and its help. */
const TABLE: CliFlag<DispyNetRelayOptions>[] = [
  {
    flag: 'host',
    short: 'i',
    option: 'hosts',
    kind: 'list',
    arg: 'ADDR',
    help: "local address to serve on; its network's broadcast address is pinged; repeatable (default: every interface)",
  },
  {
    flag: 'ext-host',
    option: 'extHost',
    kind: 'string',
    arg: 'ADDR',
    help: 'address clients reach this relay at through NAT (told to them)',
  },
  {
    flag: 'dispy-port',
    short: 'p',
    option: 'nodePort',
    kind: 'integer',
    arg: 'PORT',
    help: "the nodes' port, pinged on this network (default 51348)",
  },
  {
    flag: 'relay-port',
    option: 'relayPort',
    kind: 'integer',
    arg: 'PORT',
    help: "UDP port where clients' pings are heard (default: --dispy-port; another one if a dispynode runs on this host)",
  },
  {
    flag: 'scheduler-node',
    option: 'schedulerNodes',
    kind: 'list',
    arg: 'HOST[:PORT]',
    help: 'client or dispyscheduler told of this relay at start and of every node that announces itself; repeatable',
  },
  {
    flag: 'scheduler-port',
    option: 'schedulerPort',
    kind: 'integer',
    arg: 'PORT',
    help: "UDP port of nodes' announcements and of --scheduler-node hosts (default 51347)",
  },
  {
    flag: 'nodes',
    short: 'n',
    option: 'nodes',
    kind: 'list',
    arg: 'HOST[:PORT]',
    help: 'a node pinged by address as well as by broadcast (networks without broadcast); repeatable',
  },
  {
    flag: 'client-ttl',
    option: 'clientTtl',
    kind: 'number',
    arg: 'SECONDS',
    help: 'how long a client, and a node that announced itself, is remembered after it was last heard (default 600)',
  },
  ...secretFlags<DispyNetRelayOptions>({
    flag: 'secret',
    short: 's',
    option: 'secret',
    env: ['DISPY_SECRET'],
    file: 'secret-file',
    what: "the clients' and nodes' secret",
  }),
];

/** Python dispy's dispynetrelay flags that this one does not have, with what to do instead. */
export const DISPY_ONLY_FLAGS: Readonly<Record<string, string>> = {
  'ip-addr': 'spelled -i/--host ADDR here (repeatable)',
  certfile: 'not needed here: nothing of the relay goes over TCP (the pings it passes on are authenticated by the secret)',
  keyfile: 'not needed here: nothing of the relay goes over TCP (the pings it passes on are authenticated by the secret)',
  'ipv4-udp-multicast': 'not supported yet: the relay pings the nodes by broadcast and by address (-n)',
};

/** dispynetrelay's command line. */
export const CLI: CliSpec<DispyNetRelayOptions> = {
  app: 'dispynetrelay',
  flags: TABLE,
  dispyOnly: DISPY_ONLY_FLAGS,
  commands: 'status, quit',
  help: {
    intro: [
      'Relays dispy discovery to the nodes on this network, for clients and dispyschedulers on other',
      'networks: they list this host in their nodes (and a pattern for the nodes here); the relay passes',
      "their authenticated pings on to this network and the nodes' answers back. The clients then connect",
      'to the nodes directly over TCP, so the nodes must be reachable from them.',
    ],
    underscoreExample: '--scheduler_node',
    footer: [
      'Secret: DISPY_SECRET (or --secret-file). Without --daemon, type "status" or "quit" on stdin.',
      'SIGINT/SIGTERM stop it cleanly.',
    ],
    column: 34,
  },
};

/** Every flag (the common ones included), parseFlags, saveConfig (without the secret) and helpText. */
export const { FLAGS, parseFlags, saveConfig, helpText } = cliModule(CLI);

/** The warning printed when the secret is given on the command line. */
export const SECRET_ON_COMMAND_LINE = secretWarning(FLAGS.find((f) => f.flag === 'secret')!);
