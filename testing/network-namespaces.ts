/*
 * Test support: two hosts on one machine, as network namespaces joined by a veth pair on a
 * private /24 that exists only inside them. Multi-host behaviour (broadcast discovery) is tested
 * between them; no traffic leaves the machine. Needs root and iproute2.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

export interface NamespacePair {
  /** Namespace names and the address of each end of the veth link (netns-only addresses). */
  a: { ns: string; address: string };
  b: { ns: string; address: string };
  /** Runs `node args…` inside a namespace. */
  spawnNode(ns: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess;
  /** Deletes both namespaces (and with them the veth pair). */
  destroy(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Why namespaces cannot be made here, or undefined when they can. */
export function namespacesUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'iproute2 (the ip command) is not installed';
  }
  return undefined;
}

/** Creates namespaces A and B joined by a veth pair on 10.213.N.0/24 (netns only). */
export function createNamespacePair(): NamespacePair {
  const tag = `${process.pid % 10000}${Math.floor(Math.random() * 100)}`;
  const subnet = 1 + (Number(tag) % 250);
  const a = { ns: `dispy-a-${tag}`, address: `10.213.${subnet}.1` }; // netns-only address
  const b = { ns: `dispy-b-${tag}`, address: `10.213.${subnet}.2` }; // netns-only address
  const vethA = `dva${tag}`;
  const vethB = `dvb${tag}`;
  const destroy = () => {
    for (const ns of [a.ns, b.ns]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // not created
      }
    }
  };
  try {
    ip('netns', 'add', a.ns);
    ip('netns', 'add', b.ns);
    ip('link', 'add', vethA, 'type', 'veth', 'peer', 'name', vethB);
    ip('link', 'set', vethA, 'netns', a.ns);
    ip('link', 'set', vethB, 'netns', b.ns);
    for (const [end, veth] of [
      [a, vethA],
      [b, vethB],
    ] as const) {
      ip('-n', end.ns, 'addr', 'add', `${end.address}/24`, 'broadcast', `10.213.${subnet}.255`, 'dev', veth);
      ip('-n', end.ns, 'link', 'set', veth, 'up');
      ip('-n', end.ns, 'link', 'set', 'lo', 'up');
    }
  } catch (error) {
    destroy();
    throw error;
  }
  return {
    a,
    b,
    spawnNode: (ns, args, env) =>
      spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }),
    destroy,
  };
}
