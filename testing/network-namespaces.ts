/*
 * Test support: small networks on one machine, made of network namespaces. Each host is a
 * namespace; each subnet is a bridge in a "switch" namespace of its own, and a host joins it by a
 * veth pair (its end is eth0, eth1, ... in the order of the subnets it joins). A host marked as
 * the router forwards between its subnets (IPv4 and IPv6), and the other hosts route through it;
 * it can masquerade a subnet (NAT), forward one port to a host inside (DNAT), and refuse new
 * connections into a subnet, with nftables (or iptables where nft is missing).
 *
 * Addresses are private and exist only inside the namespaces: subnet number k (1-based, in the
 * order of `subnets`) is 10.77.k.0/24 and fd77:0:0:k::/64, and host number h (1-based, in the
 * order of `hosts`) is .h / ::h on every subnet it joins. Every name made in the root namespace
 * (the namespaces themselves) carries a tag unique to the test run, so test files run in parallel.
 * Needs root and iproute2; see `namespacesUnavailable()`.
 *
 * Everything is torn down by `destroy()` (the processes started in the namespaces first, then the
 * namespaces), and, should the test process end without it, by an exit hook; a later run removes
 * namespaces left by test processes that no longer exist.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { startNode, type NodeProcess, type StartNodeOptions } from './dispynode-process.mjs';
import { startScheduler, type SchedulerProcess, type StartSchedulerOptions } from './dispyscheduler-process.mjs';

/** Prefix of every namespace the harness makes: `dispyt-<pid>-<random>-<host>`. */
const PREFIX = 'dispyt-';

export interface SubnetSpec {
  /** IPv4 addresses on this subnet (default true). */
  ipv4?: boolean;
  /** IPv6 addresses (fd77:0:0:k::h/64) besides the link-local ones every interface has (default false). */
  ipv6?: boolean;
}

export interface NetworkSpec {
  /** The subnets by name, e.g. `{ a: {}, b: { ipv6: true } }`. */
  subnets: Record<string, SubnetSpec>;
  /** The hosts by name, each with the subnets it joins (its interfaces eth0, eth1, ... in this order). */
  hosts: Record<string, string[]>;
  /** A host (of `hosts`) that forwards between its subnets; the others' default route goes through it. */
  router?: string;
  /** The first two octets of IPv4 subnets (default '10.77': subnet k is 10.77.k.0/24). */
  ipv4Prefix?: string;
}

export interface NetHost {
  name: string;
  /** Its namespace (for `ip netns exec`). */
  ns: string;
  /** Its first address: IPv4 on its first subnet, or IPv6 if that subnet has no IPv4. */
  address: string;
  /** Its IPv4 address on each subnet it joins that has IPv4. */
  ipv4: Record<string, string>;
  /** Its IPv6 (fd77::) address on each subnet it joins that has IPv6. */
  ipv6: Record<string, string>;
  /** The interface that joins each subnet (eth0, eth1, ...). */
  interfaces: Record<string, string>;
  /** Its link-local IPv6 address on `subnet`, with the scope: `fe80::…%eth0`. */
  linkLocal(subnet: string): string;
}

export interface ProgramResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Network {
  /** The run's tag (part of every namespace's name). */
  readonly tag: string;
  readonly hosts: Record<string, NetHost>;
  /** The host named `name`; throws if there is none. */
  host(name: string): NetHost;
  /** Runs a command inside a host's namespace, with `input` on its stdin, and returns its stdout (throws on failure). */
  exec(host: string, command: string, args: string[], input?: string): string;
  /** Starts `node args…` inside a host's namespace; the process is killed by destroy(). */
  spawnNode(host: string, args: string[], options?: { env?: NodeJS.ProcessEnv; stdio?: SpawnOptions['stdio'] }): ChildProcess;
  /**
   * Runs a Node program (a script and its arguments) inside a host's namespace to its end, with
   * DISPY_SECRET set if `secret` is given; SIGKILLs it after `timeoutMs` (default 30 s).
   */
  runProgram(
    host: string,
    script: string,
    args?: string[],
    options?: { env?: NodeJS.ProcessEnv; secret?: string; timeoutMs?: number },
  ): Promise<ProgramResult>;
  /**
   * Starts a dispynode inside a host's namespace (testing/dispynode-process.mjs). `host` in the
   * options is its `-i` (omit it to serve every interface); the port defaults to 51348.
   */
  startNode(host: string, options?: Partial<StartNodeOptions>): Promise<NodeProcess>;
  /** Starts a dispyscheduler inside a host's namespace (testing/dispyscheduler-process.mjs); ports default to 51347 and 51349. */
  startScheduler(host: string, options: Omit<StartSchedulerOptions, 'host'> & { host?: string }): Promise<SchedulerProcess>;
  /** The router masquerades what leaves `subnet` for its other subnets, and refuses new connections into `subnet` (a home network behind NAT). */
  masquerade(subnet: string): void;
  /**
   * The router forwards `port` (TCP and UDP) on its addresses outside the host's subnet to `host`
   * on its first address (`toPort`, default the same), and refuses other new connections into that
   * subnet (a node behind NAT with one forwarded port). Returns the router's address the outside
   * uses, on `outside` (a subnet name).
   */
  forwardPort(host: string, port: number, outside: string, toPort?: number): string;
  /** Removes every NAT and filter rule from the router. */
  clearRules(): void;
  /** Stops every process started in the namespaces (SIGKILL), then deletes the namespaces. Idempotent. */
  destroy(): Promise<void>;
}

/** Why namespaces cannot be made here, or undefined when they can. */
export function namespacesUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  if (!has('ip', ['-V'])) return 'iproute2 (the ip command) is not installed';
  return undefined;
}

/** Why the router cannot NAT here (neither nft nor iptables), or undefined when it can. */
export function natUnavailable(): string | undefined {
  return firewall() ? undefined : 'neither nftables (nft) nor iptables is installed';
}

function has(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

let firewallKind: 'nft' | 'iptables' | undefined | null = null;
function firewall(): 'nft' | 'iptables' | undefined {
  if (firewallKind === null) firewallKind = has('nft', ['--version']) ? 'nft' : has('iptables', ['--version']) ? 'iptables' : undefined;
  return firewallKind;
}

function run(command: string, args: string[], input?: string): string {
  try {
    return execFileSync(command, args, { input, stdio: ['pipe', 'pipe', 'pipe'], encoding: 'utf8' });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`${command} ${args.join(' ')} failed: ${stderr.trim() || (error as Error).message}`, { cause: error });
  }
}

/** Namespaces whose run made them (the pid in their name) no longer exists: left by a killed test process. */
function sweepStale(): void {
  let names: string[];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return;
  }
  for (const name of names) {
    const pid = /^dispyt-(\d+)-/.exec(name)?.[1];
    if (pid === undefined || pidAlive(Number(pid))) continue;
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    } catch {
      // another run removed it first
    }
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const live = new Set<Network>();
process.on('exit', () => {
  for (const network of live) deleteNamespaces(network);
});

const namespacesOf = new WeakMap<Network, string[]>();
function deleteNamespaces(network: Network): void {
  for (const ns of namespacesOf.get(network) ?? []) {
    try {
      // Whatever still runs inside (a worker of a node, say) goes with it.
      const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      for (const pid of pids.split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone already
        }
      }
    } catch {
      // not created
    }
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // not created
    }
  }
}

/** Builds the network of `spec`; throws (after removing what it made) if any step fails. */
export function createNetwork(spec: NetworkSpec): Network {
  sweepStale();
  const tag = `${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
  const subnetNames = Object.keys(spec.subnets);
  const v4Prefix = spec.ipv4Prefix ?? '10.77';
  const hostNames = Object.keys(spec.hosts);
  const nsOf = (host: string) => `${PREFIX}${tag}-${host}`;
  const switchNs = `${PREFIX}${tag}--switch`;
  const namespaces = [switchNs, ...hostNames.map(nsOf)];
  const children = new Set<ChildProcess>();
  const stoppers = new Set<() => Promise<void>>();
  let destroyed = false;

  const subnetIndex = (subnet: string): number => {
    const index = subnetNames.indexOf(subnet);
    if (index < 0) throw new Error(`no subnet ${subnet}`);
    return index + 1;
  };
  const hosts: Record<string, NetHost> = {};
  hostNames.forEach((name, i) => {
    const h = i + 1;
    const joined = spec.hosts[name] ?? [];
    const ipv4: Record<string, string> = {};
    const ipv6: Record<string, string> = {};
    const interfaces: Record<string, string> = {};
    joined.forEach((subnet, j) => {
      const k = subnetIndex(subnet);
      const subnetSpec = spec.subnets[subnet] ?? {};
      interfaces[subnet] = `eth${j}`;
      if (subnetSpec.ipv4 ?? true) ipv4[subnet] = `${v4Prefix}.${k}.${h}`; // netns-only address
      if (subnetSpec.ipv6) ipv6[subnet] = `fd77:0:0:${k}::${h}`; // netns-only address
    });
    const first = joined[0];
    const ns = nsOf(name);
    hosts[name] = {
      name,
      ns,
      address: (first && (ipv4[first] ?? ipv6[first])) ?? '',
      ipv4,
      ipv6,
      interfaces,
      linkLocal(subnet) {
        const device = interfaces[subnet];
        if (!device) throw new Error(`${name} is not on subnet ${subnet}`);
        const out = run('ip', ['-n', ns, '-6', '-o', 'addr', 'show', 'dev', device, 'scope', 'link']);
        const address = /inet6 (fe80::[0-9a-f:]+)\//.exec(out)?.[1];
        if (!address) throw new Error(`${name} has no link-local address on ${device}`);
        return `${address}%${device}`;
      },
    };
  });
  const host = (name: string): NetHost => {
    const found = hosts[name];
    if (!found) throw new Error(`no host ${name}`);
    return found;
  };
  const exec = (name: string, command: string, args: string[], input?: string): string =>
    run('ip', ['netns', 'exec', host(name).ns, command, ...args], input);
  const sysctl = (ns: string, settings: Record<string, string>): void => {
    const script = Object.entries(settings)
      .map(([key, value]) => `echo ${value} > /proc/sys/${key.replaceAll('.', '/')}`)
      .join(' && ');
    run('ip', ['netns', 'exec', ns, 'sh', '-c', script]);
  };

  const network: Network = {
    tag,
    hosts,
    host,
    exec: (name, command, args, input) => exec(name, command, args, input),
    spawnNode(name, args, options = {}) {
      const child = spawn('ip', ['netns', 'exec', host(name).ns, process.execPath, ...args], {
        stdio: options.stdio ?? ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...options.env },
      });
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
    runProgram(name, script, args = [], options = {}) {
      const env = { ...options.env, ...(options.secret !== undefined ? { DISPY_SECRET: options.secret } : {}) };
      const child = network.spawnNode(name, [script, ...args], { env });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
      return new Promise((resolve) =>
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          resolve({ code, signal, stdout, stderr });
        }),
      );
    },
    async startNode(name, options = {}) {
      const node = await startNode({
        ...options,
        host: options.host,
        port: options.port ?? 51348,
        netns: host(name).ns,
      });
      stoppers.add(() => node.stop());
      return node;
    },
    async startScheduler(name, options) {
      const scheduler = await startScheduler({
        ...options,
        host: options.host ?? host(name).address,
        port: options.port ?? 51349,
        dispyPort: options.dispyPort ?? 51347,
        netns: host(name).ns,
      });
      stoppers.add(() => scheduler.stop());
      return scheduler;
    },
    masquerade(subnet) {
      const router = routerHost();
      const inside = router.interfaces[subnet];
      if (!inside) throw new Error(`the router is not on subnet ${subnet}`);
      applyRules(router, [
        {
          nat: `oifname != "${inside}" iifname "${inside}" masquerade`,
          ipt: ['-t', 'nat', '-A', 'POSTROUTING', '!', '-o', inside, '-s', `${v4Prefix}.${subnetIndex(subnet)}.0/24`, '-j', 'MASQUERADE'],
        },
        ...refuseInto(inside),
      ]);
    },
    forwardPort(name, port, outside, toPort = port) {
      const router = routerHost();
      const target = host(name);
      const targetSubnet = Object.keys(target.interfaces)[0]!;
      const inside = router.interfaces[targetSubnet];
      const outsideAddress = router.ipv4[outside];
      if (!inside || !outsideAddress) throw new Error(`the router is not on subnets ${targetSubnet} and ${outside} (IPv4)`);
      const rules: Rule[] = [];
      for (const proto of ['tcp', 'udp']) {
        rules.push({
          pre: `ip daddr ${outsideAddress} ${proto} dport ${port} dnat ip to ${target.address}:${toPort}`,
          ipt: [
            '-t',
            'nat',
            '-A',
            'PREROUTING',
            '-d',
            outsideAddress,
            '-p',
            proto,
            '--dport',
            String(port),
            '-j',
            'DNAT',
            '--to-destination',
            `${target.address}:${toPort}`,
          ],
        });
      }
      applyRules(router, [...rules, ...refuseInto(inside)]);
      return outsideAddress;
    },
    clearRules() {
      const router = routerHost();
      if (firewall() === 'nft') exec(router.name, 'nft', ['flush', 'ruleset']);
      else for (const table of ['nat', 'filter']) exec(router.name, 'iptables', ['-t', table, '-F']);
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await Promise.allSettled([...stoppers].map((stop) => stop()));
      const exits = [...children].map((child) => new Promise((resolve) => child.once('exit', resolve)));
      for (const child of children) child.kill('SIGKILL');
      await Promise.race([Promise.all(exits), new Promise((resolve) => setTimeout(resolve, 5000))]);
      deleteNamespaces(network);
      live.delete(network);
    },
  };

  interface Rule {
    /** nft rule for the nat table's postrouting chain, the prerouting chain, or the filter's forward chain. */
    nat?: string;
    pre?: string;
    forward?: string;
    ipt: string[];
  }
  const refuseInto = (inside: string): Rule[] => [
    {
      forward: `oifname "${inside}" ct state established,related accept`,
      ipt: ['-A', 'FORWARD', '-o', inside, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
    },
    {
      forward: `oifname "${inside}" ct status dnat accept`,
      ipt: ['-A', 'FORWARD', '-o', inside, '-m', 'conntrack', '--ctstate', 'DNAT', '-j', 'ACCEPT'],
    },
    { forward: `oifname "${inside}" drop`, ipt: ['-A', 'FORWARD', '-o', inside, '-j', 'DROP'] },
  ];
  const routerHost = (): NetHost => {
    if (!spec.router) throw new Error('the network has no router');
    if (!firewall()) throw new Error(natUnavailable());
    return host(spec.router);
  };
  const applyRules = (router: NetHost, rules: Rule[]): void => {
    if (firewall() === 'iptables') {
      for (const rule of rules) exec(router.name, 'iptables', rule.ipt);
      return;
    }
    const lines = [
      'table ip dispy_nat {',
      '  chain pre { type nat hook prerouting priority dstnat; }',
      '  chain post { type nat hook postrouting priority srcnat; }',
      '}',
      'table inet dispy_filter {',
      '  chain forward { type filter hook forward priority filter; }',
      '}',
    ];
    for (const rule of rules) {
      if (rule.nat) lines.push(`add rule ip dispy_nat post ${rule.nat}`);
      if (rule.pre) lines.push(`add rule ip dispy_nat pre ${rule.pre}`);
      if (rule.forward) lines.push(`add rule inet dispy_filter forward ${rule.forward}`);
    }
    exec(router.name, 'nft', ['-f', '-'], lines.join('\n') + '\n');
  };

  namespacesOf.set(network, namespaces);
  live.add(network);
  try {
    const noDad = { 'net.ipv6.conf.default.accept_dad': '0', 'net.ipv6.conf.all.accept_dad': '0' };
    run('ip', ['netns', 'add', switchNs]);
    sysctl(switchNs, { 'net.ipv6.conf.default.disable_ipv6': '1' });
    for (const subnet of subnetNames) {
      const bridge = `br${subnetIndex(subnet)}`;
      run('ip', ['-n', switchNs, 'link', 'add', bridge, 'type', 'bridge', 'mcast_snooping', '0']);
      run('ip', ['-n', switchNs, 'link', 'set', bridge, 'up']);
    }
    for (const [i, name] of hostNames.entries()) {
      const h = host(name);
      run('ip', ['netns', 'add', h.ns]);
      // No duplicate address detection: addresses (link-local too) are usable at once.
      sysctl(h.ns, name === spec.router ? { ...noDad, 'net.ipv4.ip_forward': '1', 'net.ipv6.conf.all.forwarding': '1' } : noDad);
      run('ip', ['-n', h.ns, 'link', 'set', 'lo', 'up']);
      for (const [subnet, device] of Object.entries(h.interfaces)) {
        const k = subnetIndex(subnet);
        const port = `h${i + 1}s${k}`;
        run('ip', ['-n', h.ns, 'link', 'add', device, 'type', 'veth', 'peer', 'name', port, 'netns', switchNs]);
        run('ip', ['-n', switchNs, 'link', 'set', port, 'master', `br${k}`, 'up']);
        const v4 = h.ipv4[subnet];
        if (v4) run('ip', ['-n', h.ns, 'addr', 'add', `${v4}/24`, 'broadcast', `${v4Prefix}.${k}.255`, 'dev', device]);
        const v6 = h.ipv6[subnet];
        if (v6) run('ip', ['-n', h.ns, '-6', 'addr', 'add', `${v6}/64`, 'dev', device, 'nodad']);
        run('ip', ['-n', h.ns, 'link', 'set', device, 'up']);
      }
    }
    // Hosts on one subnet with the router route everything else through it.
    const router = spec.router ? host(spec.router) : undefined;
    if (router) {
      for (const h of Object.values(hosts)) {
        const subnets = Object.keys(h.interfaces);
        const only = subnets[0];
        if (h === router || subnets.length !== 1 || !only || !router.interfaces[only]) continue;
        const via4 = router.ipv4[only];
        const via6 = router.ipv6[only];
        if (via4 && h.ipv4[only]) run('ip', ['-n', h.ns, 'route', 'add', 'default', 'via', via4]);
        if (via6 && h.ipv6[only]) run('ip', ['-n', h.ns, '-6', 'route', 'add', 'default', 'via', via6]);
      }
    }
  } catch (error) {
    deleteNamespaces(network);
    live.delete(network);
    throw error;
  }
  return network;
}

export interface NamespacePair {
  /** Namespace names and the address of each end of the link (netns-only addresses). */
  a: { ns: string; address: string };
  b: { ns: string; address: string };
  /** Runs `node args…` inside a namespace. */
  spawnNode(ns: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess;
  /** Stops what it started and deletes both namespaces. */
  destroy(): void;
}

/** Two hosts, a and b, on one subnet (10.213.1.0/24; a is .1, b is .2): the simplest network. */
export function createNamespacePair(): NamespacePair {
  const network = createNetwork({ subnets: { lan: {} }, hosts: { a: ['lan'], b: ['lan'] }, ipv4Prefix: '10.213' });
  const byNs = new Map([network.host('a'), network.host('b')].map((h) => [h.ns, h.name]));
  return {
    a: { ns: network.host('a').ns, address: network.host('a').address },
    b: { ns: network.host('b').ns, address: network.host('b').address },
    spawnNode: (ns, args, env) => network.spawnNode(byNs.get(ns) ?? ns, args, { env }),
    destroy: () => void network.destroy(),
  };
}
