import { mkdirSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { DispyError, ErrorCode, type dispy, type FrameInit, type ReceivedFile } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { LocalFile } from '../cluster/types.js';
import type { ClientNodeOps } from './client-link-context.js';
import type { ClientComputation } from './kept-client-computations.js';

export interface ClientNodeRequestsOptions {
  /** The computations of the client's connection, by id. */
  computations: ReadonlyMap<string, ClientComputation>;
  nodeOps: ClientNodeOps;
  logger: Logger;
  send(frame: FrameInit): void;
}

/**
 * A client's requests about its computation on one node (SharedJobCluster's sendFile, closeNode,
 * deallocateNode, setNodeCpus), answered on its connection once the scheduler has done them.
 */
export class ClientNodeRequests {
  /** sendFile transfers arriving (FileChunk naming a node), by transfer id. */
  private readonly toNodes = new Map<number, { computeId: string; nodeKey: string; dir: string }>();

  constructor(private readonly options: ClientNodeRequestsOptions) {}

  /** Whether this connection holds the computation, set up. */
  owns(computeId: string): boolean {
    return this.options.computations.get(computeId)?.added === true;
  }

  /** Whether a transfer is a sendFile's (its file goes on to a node once here). */
  isToNode(transferId: number): boolean {
    return this.toNodes.has(transferId);
  }

  /** A sendFile's file (FileChunk naming a node) arrives in a directory of its own transfer, removed once forwarded. */
  toNodeRoot(chunk: dispy.IFileChunk): string {
    const computation = this.options.computations.get(chunk.computeId ?? '');
    if (!computation?.added) throw new DispyError(ErrorCode.FILE, `no computation ${chunk.computeId} is set up for this client`);
    const name = chunk.path ?? '';
    if (name !== path.basename(name) || name === '.' || name === '..') {
      throw new DispyError(ErrorCode.FILE, `sendFile: ${JSON.stringify(name)} must be a plain file name`);
    }
    const dir = path.join(computation.dir, 'send', String(Number(chunk.transferId)));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.toNodes.set(Number(chunk.transferId), { computeId: computation.computeId, nodeKey: chunk.nodeKey ?? '', dir });
    return dir;
  }

  /** A sendFile's file is here (or failed): it goes on to its node, then the client hears how that went. */
  async forwardToNode(transferId: number, result: ReceivedFile | Error): Promise<void> {
    const { computeId, nodeKey, dir } = this.toNodes.get(transferId)!;
    this.toNodes.delete(transferId);
    let answer: dispy.IFileDone = { transferId, ok: true };
    try {
      if (result instanceof Error) throw result;
      const file: LocalFile = { name: result.name, path: result.path, size: result.size, mode: (await stat(result.path)).mode & 0o777 };
      if (!(await this.options.nodeOps.sendFile(computeId, nodeKey, file))) {
        answer = { transferId, ok: false, code: ErrorCode.NO_COMPUTATION, error: `node ${nodeKey} does not serve the computation` };
      }
    } catch (error) {
      const code = DispyError.isInstance(error) ? error.code : ErrorCode.FILE;
      answer = { transferId, ok: false, code, error: (error as Error).message };
    } finally {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
    this.options.send({ fileDone: answer });
  }

  async closeNode(close: dispy.Close, requestId: number): Promise<void> {
    const { computeId, nodeKey } = close;
    let served = false;
    if (this.owns(computeId)) {
      served = await this.options.nodeOps.closeNode(computeId, nodeKey, close.terminatePending).catch((error: Error) => {
        this.options.logger.warn(`closing ${computeId} on ${nodeKey}: ${error.message}`);
        return false;
      });
    }
    this.options.send({ requestId, closeReply: { computeId, notServed: !served } });
  }

  deallocate(request: dispy.Deallocate, requestId: number): void {
    const ok = this.owns(request.computeId) && this.options.nodeOps.deallocate(request.computeId, request.nodeKey);
    this.options.send({ requestId, deallocateReply: { computeId: request.computeId, ok } });
  }

  async setCpus(request: dispy.SetCpus, requestId: number): Promise<void> {
    const { computeId, nodeKey, cpus } = request;
    const reply = this.owns(computeId)
      ? await this.options.nodeOps.setNodeCpus(computeId, nodeKey, cpus)
      : { error: `no computation ${computeId} is set up for this client` };
    this.options.send({ requestId, setCpusReply: { computeId, ...reply } });
  }
}
