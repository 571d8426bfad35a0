import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { DispyJob, JobCluster } from '@dispy/client';
import { startNode, stopAllNodes, type NodeProcess } from '../../../testing/dispynode-process.mjs';
import { DispyHTTPServer } from '../src/index.js';
import { artifactPath, hasChromium, launchChromium } from './browser.js';

/** A node name that would run a script if the page parsed it as HTML. */
const HOSTILE_NAME = '<img src=x onerror=alert(1)>';
const TOKEN = 'monitor-test-token-1234';

/** Runs on the node: waits `ms`, then returns it. */
async function nap(ms: number) {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return ms;
}

describe.skipIf(!hasChromium)('the monitor page in a real browser', () => {
  let browser: Browser;
  let node: NodeProcess;
  let cluster: JobCluster<typeof nap> | undefined;
  let server: DispyHTTPServer | undefined;
  let other: http.Server | undefined;

  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    await server?.shutdown();
    await cluster?.close({ timeout: 5 });
    await stopAllNodes();
    if (other) await new Promise((resolve) => other!.close(resolve));
    server = cluster = other = undefined;
  });

  /** A node named HOSTILE_NAME with 2 CPUs, a cluster on it, and the monitor with a token. */
  async function start(): Promise<{ base: string; page: Page; dialogs: string[] }> {
    node = await startNode({ host: '127.0.0.1', cpus: 2, args: ['--name', HOSTILE_NAME] });
    cluster = new JobCluster(nap, { nodes: [node.host], nodePort: node.port, ipAddr: '127.0.0.1', port: 0, loglevel: 'silent' });
    server = new DispyHTTPServer(cluster, { port: 0, token: TOKEN, showJobArgs: true, loglevel: 'silent' });
    const { port } = await server.start();
    const base = `http://127.0.0.1:${port}`;
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await context.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.accept();
    });
    const answer = await page.goto(`${base}/?token=${TOKEN}`);
    expect(answer?.status()).toBe(200);
    // The token went into the cookie: the address no longer shows it.
    expect(page.url()).toBe(`${base}/`);
    return { base, page, dialogs };
  }

  const count = (page: Page, name: string) => page.locator(`[data-count="${name}"]`);

  it('shows nodes and jobs as they change, cancels a job, sets a node’s CPUs, and escapes the node name', async () => {
    const { page, dialogs } = await start();
    const key = `${node.host}:${node.port}`;
    const row = page.locator(`#nodes tr[data-node="${key}"]`);
    await row.waitFor({ timeout: 20_000 });
    // The name is text: no element was made of it, and no script ran.
    await expect(row.locator('td').first().textContent()).resolves.toBe(HOSTILE_NAME);
    expect(await page.locator('#nodes img').count()).toBe(0);
    expect(await row.locator('td.cpus').textContent()).toBe('2 / 2');

    const short = [cluster!.submit(100), cluster!.submit(150)];
    await Promise.all(short.map((job) => job.wait()));
    await page.waitForFunction(() => document.querySelector('[data-count="finished"]')?.textContent === '2', undefined, {
      timeout: 20_000,
    });
    // Sent together to a node with two idle workers, one to each (sent along with the short ones, both could queue behind one).
    const long = [cluster!.submit(60_000), cluster!.submit(60_000)];
    await page.waitForFunction(() => document.querySelector('[data-count="running"]')?.textContent === '2', undefined, { timeout: 20_000 });
    expect(await count(page, 'submitted').textContent()).toBe('4');
    expect(await row.locator('td.done').textContent()).toBe('2');
    await page.screenshot({ path: artifactPath('cluster-page.png'), fullPage: true });

    await row.locator('a').click();
    const jobRows = page.locator('#jobs tbody tr');
    await page.waitForFunction(() => document.querySelectorAll('#jobs tbody tr').length === 2, undefined, { timeout: 20_000 });
    expect(await page.locator('#node-title').textContent()).toBe(HOSTILE_NAME);
    expect(await jobRows.first().locator('td.args').textContent()).toBe('60000');
    await page.screenshot({ path: artifactPath('node-page.png'), fullPage: true });

    await jobRows.first().locator('button.cancel').click();
    const ended = await Promise.race(long.map((job) => job.wait().then(() => job)));
    expect(DispyJob.statusName(ended.status)).toBe('Cancelled');
    await page.waitForFunction(() => document.querySelectorAll('#jobs tbody tr').length === 1, undefined, { timeout: 20_000 });

    await page.locator('#cpus input').fill('1');
    await page.locator('#cpus button').click();
    await page.locator('#notice', { hasText: 'CPUs now used: 1' }).waitFor({ timeout: 20_000 });
    expect(cluster!.status().nodes[0]!.cpus).toBe(1);
    await page.locator('#node-facts dd', { hasText: '1 used of 2' }).waitFor({ timeout: 20_000 });

    await page.locator('#back').click();
    await page.waitForFunction(() => document.querySelector('[data-count="cancelled"]')?.textContent === '1', undefined, {
      timeout: 20_000,
    });
    expect(await row.locator('td.cpus').textContent()).toBe('1 / 2');
    expect(dialogs).toEqual([]);
  });

  it('refuses requests and sockets without the token, and actions and sockets from another origin', async () => {
    const { base, page } = await start();
    await page.locator('#nodes tbody tr').first().waitFor({ timeout: 20_000 });
    const job = cluster!.submit(60_000);
    await page.waitForFunction(() => document.querySelector('[data-count="running"]')?.textContent === '1', undefined, { timeout: 20_000 });

    // A browser without the cookie gets 403 for the page, its files, and the state.
    const stranger = await browser.newContext();
    try {
      const strangerPage = await stranger.newPage();
      for (const path of ['/', '/monitor.js', '/api/state']) expect((await strangerPage.goto(`${base}${path}`))?.status()).toBe(403);
    } finally {
      await stranger.close();
    }

    // A page of another origin on the same host (same site: the cookie goes along) tries an action and the stream.
    other = http.createServer((_req, res) => res.end('<!doctype html><title>other</title>'));
    await new Promise<void>((resolve) => other!.listen(0, '127.0.0.1', resolve));
    const otherPage = await page.context().newPage();
    await otherPage.goto(`http://127.0.0.1:${(other.address() as AddressInfo).port}/`);
    const [jobKey] = await page.evaluate(async () => {
      const answer = (await (await fetch('/api/state')).json()) as { clusters: unknown[] };
      return [answer.clusters.length];
    });
    expect(jobKey).toBe(1);
    const attempts = await otherPage.evaluate(
      async (target) => {
        const body = JSON.stringify({ action: 'setNodeCpus', cluster: 'c1', node: target.node, cpus: 1 });
        const simple = await fetch(`${target.base}/api/action`, { method: 'POST', mode: 'no-cors', credentials: 'include', body })
          .then((r) => r.type)
          .catch((e: Error) => e.message);
        const json = await fetch(`${target.base}/api/action`, {
          method: 'POST',
          credentials: 'include',
          headers: { 'content-type': 'application/json' },
          body,
        })
          .then((r) => String(r.status))
          .catch(() => 'refused');
        const socket = await new Promise<string>((resolve) => {
          const ws = new WebSocket(`${target.base.replace('http', 'ws')}/ws`);
          ws.onmessage = () => resolve('opened');
          ws.onerror = () => resolve('refused');
        });
        return { simple, json, socket };
      },
      { base, node: `${node.host}:${node.port}` },
    );
    expect(attempts.json).toBe('refused');
    expect(attempts.socket).toBe('refused');
    // The no-cors request went out (its answer is opaque): the server refused it by its Origin.
    expect(attempts.simple).toBe('opaque');
    expect(cluster!.status().nodes[0]!.cpus).toBe(2);
    expect(job.status).toBe(DispyJob.Running);
  });

  it('deallocates a node from its page (jobs wait), allocates it again from the cluster page (they run), and closes it', async () => {
    const { page, dialogs } = await start();
    const key = `${node.host}:${node.port}`;
    const row = page.locator(`#nodes tr[data-node="${key}"]`);
    await row.waitFor({ timeout: 20_000 });
    await row.locator('a').click();
    await page.locator('#deallocate').click();
    await page.locator('#notice', { hasText: `${key} deallocated: it gets no new jobs` }).waitFor({ timeout: 20_000 });

    // No node takes new jobs: this one waits in the client's queue.
    const job = cluster!.submit(50);
    await page.locator('#back').click();
    await page.waitForFunction(() => document.querySelector('[data-count="queued"]')?.textContent === '1', undefined, { timeout: 20_000 });
    expect(job.status).toBe(DispyJob.Created);

    await page.locator('#allocate input').fill(node.host);
    await page.locator('#allocate button').click();
    await page.locator('#notice', { hasText: `${node.host} allocated` }).waitFor({ timeout: 20_000 });
    expect(await job.wait()).toBe(50);

    await row.locator('a').click();
    await page.locator('#close-node').click();
    await page.locator('#notice', { hasText: `${key} closed` }).waitFor({ timeout: 20_000 });
    expect(dialogs).toEqual([`Close ${key} for this cluster?`]);
  });
});
