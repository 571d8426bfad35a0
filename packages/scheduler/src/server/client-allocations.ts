import { lookup } from 'node:dns/promises';
import { mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { dispy, FrameInit } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { LocalFile } from '../cluster/types.js';
import { matchesNodes } from './node-patterns.js';

/** One way a SharedJobCluster chooses nodes (its NodeAllocate), as dispyscheduler keeps it. */
export interface ClientAllocation {
  /** Address, host name or `*` pattern, and the addresses a host name resolved to. */
  readonly patterns: string[];
  /** 0: all CPUs; > 0 at most that many; < 0 that many fewer (honoured with --cooperative or an exclusive computation). */
  readonly cpus: number;
  /** Its per-node depends files, in place at the scheduler. */
  readonly files: LocalFile[];
  readonly setupArgs?: Uint8Array;
}

/** The first of `allocations` that chooses the node at `address` (named `name`). */
export function allocationFor(allocations: readonly ClientAllocation[], address: string, name: string): ClientAllocation | undefined {
  return allocations.find((allocation) => matchesNodes(allocation.patterns, address, name));
}

/** Where an allocation's file is sent (FileChunk.path): `nodes/<n>/<name>`. */
const ALLOCATION_FILE = /^nodes\/\d{1,9}\/([^/\\]+)$/;

interface Waiting {
  readonly computeId: string;
  readonly names: Set<string>;
  readonly arrived: (name: string, error?: Error) => void;
}

/** What the Allocate requests of a client need of its connection. */
export interface AllocationsHost {
  readonly logger: Logger;
  readonly peer: string;
  send(frame: FrameInit): void;
  /** The directory of a computation's files at the scheduler. */
  dirOf(computeId: string): string;
  /** Whether the computation is set up (added to the scheduler): its allocations apply at once. */
  isAdded(computeId: string): boolean;
  /** Adds allocations to a computation set up. */
  apply(computeId: string, allocations: ClientAllocation[]): Promise<void>;
}

/**
 * The Allocate requests of one SharedJobCluster connection: takes the per-node depends files they
 * name (FileWant, then FileChunk at `nodes/<n>/<name>` under the computation's directory), then
 * applies the allocations to the computation, or, for one not set up yet (an Allocate sent before
 * its Setup), keeps them for its Setup (`takeEarly`).
 */
export class ClientAllocations {
  private readonly waiting = new Set<Waiting>();
  private readonly early = new Map<string, ClientAllocation[]>();

  constructor(private readonly host: AllocationsHost) {}

  async handle(request: dispy.Allocate, requestId: number): Promise<void> {
    const { computeId } = request;
    const nodes = request.nodes as dispy.NodeAllocation[];
    const answer = (error?: string): void =>
      this.host.send({ requestId, allocateReply: error === undefined ? { computeId, ok: true } : { computeId, ok: false, error } });
    try {
      const dir = this.host.dirOf(computeId);
      const names = nodes.flatMap((node) => node.files.map((file) => file.name ?? ''));
      const bad = names.find((name) => !ALLOCATION_FILE.test(name) || name.endsWith('/.') || name.endsWith('/..'));
      if (bad !== undefined) return answer(`NodeAllocate depends file ${JSON.stringify(bad)} is not nodes/<n>/<file name>`);
      if (names.length > 0) {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        await new Promise<void>((resolve, reject) => {
          const entry: Waiting = {
            computeId,
            names: new Set(names),
            arrived: (name, error) => {
              if (error) {
                this.waiting.delete(entry);
                reject(error);
                return;
              }
              entry.names.delete(name);
              if (entry.names.size > 0) return;
              this.waiting.delete(entry);
              resolve();
            },
          };
          this.waiting.add(entry);
          this.host.send({ requestId, fileWant: { computeId, names } });
        });
      }
      const allocations = await Promise.all(
        nodes.map(async (node): Promise<ClientAllocation> => ({
          patterns: await this.patterns(node.host),
          cpus: node.cpus,
          files: (node.files as dispy.FileInfo[]).map((file) => ({
            name: path.basename(file.name ?? ''),
            path: path.join(dir, file.name ?? ''),
            size: Number(file.size ?? 0),
            mode: (file.mode ?? 0o644) & 0o777,
          })),
          setupArgs: node.setupArgs.length > 0 ? node.setupArgs : undefined,
        })),
      );
      if (this.host.isAdded(computeId)) await this.host.apply(computeId, allocations);
      else this.early.set(computeId, [...(this.early.get(computeId) ?? []), ...allocations]);
      answer();
    } catch (error) {
      answer((error as Error).message);
    }
  }

  /** The allocations sent before the computation's Setup (they replace the Setup's `nodes`). */
  takeEarly(computeId: string): ClientAllocation[] | undefined {
    const allocations = this.early.get(computeId);
    this.early.delete(computeId);
    return allocations;
  }

  /** Where a FileChunk of an Allocate's files goes (the computation's directory), or undefined when it is none. */
  rootFor(chunk: dispy.IFileChunk): string | undefined {
    if (Number(chunk.jobId ?? 0) > 0 || chunk.nodeKey) return undefined;
    for (const entry of this.waiting)
      if (entry.computeId === chunk.computeId && entry.names.has(chunk.path ?? '')) return this.host.dirOf(entry.computeId);
    return undefined;
  }

  /** A file arrived (or failed); true when it was one of an Allocate's. */
  arrived(computeId: string, name: string, error?: Error): boolean {
    for (const entry of this.waiting) {
      if (entry.computeId !== computeId || !entry.names.has(name)) continue;
      entry.arrived(name, error);
      return true;
    }
    return false;
  }

  /** The connection ended: waiting requests fail, and files of allocations never set up are removed. */
  async close(): Promise<void> {
    for (const entry of [...this.waiting]) entry.arrived('', new Error('the connection ended'));
    const early = [...this.early.keys()];
    this.early.clear();
    await Promise.all(early.map((computeId) => rm(this.host.dirOf(computeId), { recursive: true, force: true }).catch(() => undefined)));
  }

  /** A host name also matches by its addresses (a name that does not resolve stays a name). */
  private async patterns(host: string): Promise<string[]> {
    if (host === '*' || host.includes('*') || net.isIP(host)) return [host];
    try {
      return [host, ...(await lookup(host, { all: true })).map(({ address }) => address)];
    } catch {
      this.host.logger.debug(`client ${this.host.peer}: node ${host} does not resolve; matched by name only`);
      return [host];
    }
  }
}
