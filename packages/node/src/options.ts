import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_NODE_PORT, LOG_LEVELS } from '@dispy/protocol';

/**
 * Options of a node, shared by `DispyNodeServer` and the `dispynode` CLI (whose flags, config
 * file and --help are generated from the descriptions here).
 */
export const nodeOptionsSchema = z
  .object({
    cpus: z
      .number({ invalid_type_error: 'cpus must be an integer' })
      .int('cpus must be an integer')
      .default(0)
      .describe('CPUs to serve: 0 all, negative: that many fewer than the machine has'),
    hosts: z
      .array(z.string().min(1))
      .default([])
      .describe('addresses to serve on (repeatable); default: all interfaces'),
    port: z
      .number()
      .int()
      .min(0, 'port must be 0..65535')
      .max(65535, 'port must be 0..65535')
      .default(DEFAULT_NODE_PORT)
      .describe('TCP and UDP port of the node (0: any free port)'),
    name: z.string().default(() => os.hostname()).describe('name shown to clients'),
    destPathPrefix: z
      .string()
      .default(() => path.join(os.tmpdir(), 'dispy', 'node'))
      .describe('directory under which computations keep their files'),
    secret: z.string().default('').describe('shared secret clients must prove'),
    logLevel: z.enum(LOG_LEVELS).default('info').describe('log level'),
  })
  .strict();

export type NodeOptions = z.input<typeof nodeOptionsSchema>;
export type ResolvedNodeOptions = z.output<typeof nodeOptionsSchema>;

/** How many CPUs `cpus` means on this machine; throws with the accepted range when impossible. */
export function resolveCpus(cpus: number, available = os.availableParallelism()): number {
  if (cpus > available) throw new RangeError(`cpus must be at most ${available} on this machine, got ${cpus}`);
  const resolved = cpus > 0 ? cpus : available + cpus;
  if (resolved < 1) {
    throw new RangeError(`cpus ${cpus} leaves no CPU to serve (this machine has ${available})`);
  }
  return resolved;
}
