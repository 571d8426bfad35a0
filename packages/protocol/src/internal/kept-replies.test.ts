import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { dispy } from '../schema/schema.js';
import { KeptReplies, type ReplySink } from './kept-replies.js';
import { createLogger } from './logger.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function kept(): KeptReplies {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-kept-replies-'));
  dirs.push(dir);
  return new KeptReplies(dir, 'c0ffee', createLogger('test', 'silent'));
}

/** A client's connection that records the job ids of the replies it gets. */
function sink(): ReplySink & { jobIds: number[] } {
  const jobIds: number[] = [];
  return {
    jobIds,
    send: (frame) => {
      jobIds.push(Number(frame.jobReply!.jobId));
      return true;
    },
    drain: () => Promise.resolve(),
  };
}

const reply = (jobId: number): dispy.IJobReply => ({ computeId: 'c0ffee', jobId, status: dispy.JobStatus.FINISHED });

describe('KeptReplies', () => {
  it('resends every reply not acknowledged, in job order, after the client comes and goes', async () => {
    const replies = kept();
    const first = sink();
    replies.attach(first);
    replies.ended(reply(2));
    replies.ended(reply(1));
    replies.acknowledged([2]);
    replies.detach(Date.now(), Date.now() + 60_000);
    replies.ended(reply(3));
    await replies.settled();
    const second = sink();
    const { savedReplies, resend } = replies.attach(second);
    expect(savedReplies).toBe(2);
    await resend();
    expect(second.jobIds).toEqual([1, 3]);
  });

  it('keeps a reply on disk when the client leaves twice while it is being saved (two saves of one reply)', async () => {
    const replies = kept();
    replies.attach(sink());
    replies.ended(reply(10));
    // The first save starts; the client is back and gone again before it ends: a second save of the same reply starts.
    replies.detach(Date.now(), Date.now() + 60_000);
    replies.attach(sink());
    replies.detach(Date.now(), Date.now() + 60_000);
    await replies.settled();
    expect(existsSync(path.join(replies.saved.dir, '10.reply'))).toBe(true);
    const back = sink();
    const { savedReplies, resend } = replies.attach(back);
    expect(savedReplies).toBe(1);
    await resend();
    expect(back.jobIds).toEqual([10]);
  });

  it('deletes the saved file of a reply acknowledged while it was being saved', async () => {
    const replies = kept();
    const client = sink();
    replies.attach(client);
    replies.ended(reply(7));
    replies.detach(Date.now(), Date.now() + 60_000);
    replies.attach(sink());
    replies.acknowledged([7]);
    await replies.settled();
    expect(existsSync(path.join(replies.saved.dir, '7.reply'))).toBe(false);
    expect(replies.hasReplies).toBe(false);
  });
});
