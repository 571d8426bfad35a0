import { z } from 'zod';
import type { MonitorSource } from '@dispy/protocol/internal';

/** What the page may ask (`POST /api/action`, JSON). */
const actionSchema = z.discriminatedUnion('action', [
  z.object({ action: z.literal('cancelJob'), cluster: z.string(), job: z.string().max(40) }).strict(),
  z
    .object({
      action: z.literal('setNodeCpus'),
      cluster: z.string(),
      node: z.string().max(300),
      cpus: z.number().int().min(-4096).max(4096),
    })
    .strict(),
  z.object({ action: z.literal('allocateNode'), cluster: z.string(), host: z.string().min(1).max(300) }).strict(),
  z.object({ action: z.literal('deallocateNode'), cluster: z.string(), node: z.string().max(300) }).strict(),
  z.object({ action: z.literal('closeNode'), cluster: z.string(), node: z.string().max(300) }).strict(),
]);

export type ActionRequest = z.infer<typeof actionSchema>;

/** The answer to an action: done or not, the CPUs now used (setNodeCpus), or why it was refused. */
export interface ActionReply {
  status: number;
  body: { ok: boolean; cpus?: number; error?: string };
}

/** Checks an action request and runs it on its cluster. */
export async function runAction(body: unknown, find: (id: string) => MonitorSource | undefined): Promise<ActionReply> {
  const parsed = actionSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      status: 400,
      body: { ok: false, error: `not an action: ${issue ? `${issue.path.join('.')} ${issue.message}` : 'malformed'}` },
    };
  }
  const request = parsed.data;
  const source = find(request.cluster);
  if (!source) return { status: 404, body: { ok: false, error: `no cluster ${request.cluster} here` } };
  try {
    switch (request.action) {
      case 'cancelJob':
        return done(await source.cancelJob(request.job), `job ${request.job} is not running or waiting any more`);
      case 'setNodeCpus': {
        const cpus = await source.setNodeCpus(request.node, request.cpus);
        return cpus < 0
          ? refused(`the CPUs of ${request.node} could not be set to ${request.cpus}`)
          : { status: 200, body: { ok: true, cpus } };
      }
      case 'allocateNode':
        return done(await source.allocateNode(request.host), `${request.host} could not be allocated`);
      case 'deallocateNode':
        return done(await source.deallocateNode(request.node), `${request.node} is not a node of the cluster`);
      case 'closeNode':
        return done(await source.closeNode(request.node), `${request.node} is not a node of the cluster`);
    }
  } catch (error) {
    return refused((error as Error).message);
  }
}

function done(ok: boolean, otherwise: string): ActionReply {
  return ok ? { status: 200, body: { ok: true } } : refused(otherwise);
}

function refused(why: string): ActionReply {
  return { status: 409, body: { ok: false, error: why } };
}
