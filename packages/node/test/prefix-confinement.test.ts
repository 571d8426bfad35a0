import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { dispy, sendFileChunks } from '@dispy/protocol';
import { socketPair, type MemorySocket } from '../../../testing/socket-pair.js';
import { ClientSession } from '../src/session/client-session.js';
import { SessionClient, fakeNode } from './session-client.js';

// Symbolic links left under the prefix (by an earlier client's jobs, in a kept destPath) never
// lead a later client's files out of it.

let node: ReturnType<typeof fakeNode>;
let sockets: { client: MemorySocket; server: MemorySocket };
let client: SessionClient;
let ended: Promise<void>;
let outside: string;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  node = fakeNode();
  sockets = socketPair();
  client = new SessionClient(sockets.client);
  let resolveEnded!: () => void;
  ended = new Promise((resolve) => (resolveEnded = resolve));
  new ClientSession(sockets.server.asSocket(), node, () => resolveEnded());
  outside = mkdtempSync(path.join(os.tmpdir(), 'dispy-outside-'));
  writeFileSync(path.join(outside, 'id_ed25519'), 'private key');
});

afterEach(async () => {
  sockets.client.destroy();
  await ended;
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
  node.dispose();
  rmSync(outside, { recursive: true, force: true });
});

const programSetup = (computeId: string, destPath: string, files: dispy.IFileInfo[] = []): dispy.ISetup => ({
  computeId,
  name: computeId,
  kind: dispy.ComputationKind.PROGRAM,
  source: 'prog.sh',
  destPath,
  cpus: 1,
  cleanup: false,
  files: [{ name: 'prog.sh', size: 10 }, ...files],
});

describe('a kept destPath with a symbolic link in it', () => {
  it('refuses a destPath that goes through a symbolic link, at any level', async () => {
    symlinkSync(outside, path.join(node.destPathPrefix, 'kept'));
    await client.authenticate('sesame');
    let requestId = 0;
    for (const destPath of ['kept', 'kept/sub']) {
      client.send({ requestId: ++requestId, setup: programSetup(`c${requestId}`, destPath) });
      const reply = await client.next('setupReply');
      expect(reply.setupReply).toMatchObject({ ok: false });
      expect(reply.setupReply!.error).toMatch(/symbolic link; refused/);
    }
    expect(readdirSync(outside)).toEqual(['id_ed25519']);
  });

  it('never writes a depends file through a symbolic link a job left in the kept directory', async () => {
    const kept = path.join(node.destPathPrefix, 'shared');
    mkdirSync(path.join(kept, 'real'), { recursive: true });
    symlinkSync(outside, path.join(kept, 'data'));
    symlinkSync(path.join(outside, 'id_ed25519'), path.join(kept, 'key'));
    const source = path.join(node.destPathPrefix, 'client-side.txt');
    writeFileSync(source, 'replaced');
    await client.authenticate('sesame');
    // A depends file named through the link is refused at setup, as is one the link stands for.
    client.send({ requestId: 1, setup: programSetup('a', 'shared', [{ name: 'data/id_ed25519', size: 8 }]) });
    expect((await client.next('setupReply')).setupReply!.error).toMatch(/symbolic link; refused/);
    client.send({ requestId: 2, setup: programSetup('b', 'shared', [{ name: 'key', size: 11 }]) });
    expect((await client.next('setupReply')).setupReply!.error).toMatch(/symbolic link; refused/);
    // A transfer aimed through the link (without a setup that names it) is refused too.
    client.send({ requestId: 3, setup: programSetup('c', 'shared') });
    await client.next('fileWant');
    await sendFileChunks(client.channel, { transferId: 7, file: source, name: 'data/id_ed25519', computeId: 'c' });
    const done = await client.next('fileDone');
    expect(done.fileDone).toMatchObject({ ok: false });
    expect(done.fileDone!.error).toMatch(/symbolic link; refused/);
    expect(readFileSync(path.join(outside, 'id_ed25519'), 'utf8')).toBe('private key');
    expect(readdirSync(outside)).toEqual(['id_ed25519']);
  });
});
