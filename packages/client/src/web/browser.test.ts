/**
 * The same SDK in a real browser: a page in headless Chromium runs
 * `@parley/client` on its browser platform (WebCrypto and @noble, IndexedDB,
 * the browser's WebSocket) against a real server, and talks with a Node
 * client. Nothing of the SDK is changed for the browser.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ParleyClient } from '@parley/client';

import { browserAvailable, browserTitle, bundleEntry, launchBrowser, serveOrigin, type Origin } from '../../../../testing/browser.js';
import { eventually, Profile, texts } from '../../../../testing/clients.js';
import { freshStorage, spawnServer, type ServerProcess, type Storage } from '../../../../testing/server.js';

type Page = Awaited<ReturnType<Awaited<ReturnType<typeof launchBrowser>>['newPage']>>;

interface BrowserParley {
  create(username: string): Promise<{ username: string; deviceId: number }>;
  reopen(username: string): Promise<void>;
  send(to: string, text: string): Promise<string>;
  conversation(peer: string): Promise<{ body: string; direction: string; status: string }[]>;
  safetyNumber(peer: string): Promise<string>;
}

let storage: Storage | undefined;
let server: ServerProcess | undefined;
let origin: Origin | undefined;
let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;
let page: Page | undefined;
const profile = new Profile();
let bob: ParleyClient | undefined;

/** Calls `window.parley[op](...args)` in the page. */
function inPage<K extends keyof BrowserParley>(op: K, ...args: Parameters<BrowserParley[K]>): ReturnType<BrowserParley[K]> {
  return page!.evaluate(
    async ({ op, args }) => {
      const parley = (globalThis as unknown as { parley: Record<string, (...a: string[]) => Promise<unknown>> }).parley;
      return parley[op]!(...args);
    },
    { op, args: args },
  ) as ReturnType<BrowserParley[K]>;
}

describe.skipIf(!browserAvailable)(`the client SDK ${browserTitle}`, () => {
  beforeAll(async () => {
    storage = await freshStorage('sqlite');
    server = await spawnServer(storage);
    origin = await serveOrigin(server.url, await bundleEntry());
    browser = await launchBrowser();
    const opened = (page = await browser.newPage());
    const errors: string[] = [];
    opened.on('pageerror', (error) => errors.push(error.message));
    await opened.goto(origin.url);
    await opened.waitForFunction(() => 'parley' in globalThis, undefined, { timeout: 30_000 }).catch(() => {
      throw new Error(`the page did not load the SDK: ${errors.join('; ')}`);
    });
  });

  afterAll(async () => {
    await bob?.close();
    await browser?.close();
    await origin?.close();
    await server?.stop();
    await storage?.drop();
    profile.remove();
  });

  it('a browser device and a Node device talk both ways, and the browser keeps its profile in IndexedDB', async () => {
    const suffix = Math.random().toString(36).slice(2, 7);
    const alice = `alice_${suffix}`;
    expect(await inPage('create', alice)).toEqual({ username: alice, deviceId: 1 });

    // Bob's device talks to the Parley server directly; the page reaches it through its origin.
    const node = (bob = await profile.create(server!.url, `bob_${suffix}`));
    await node.sync();
    expect(await inPage('send', node.username, 'hello from a browser')).toBe('sent');
    await eventually('bob reads the browser message', async () => (await texts(node, alice)).includes('hello from a browser'));

    await node.sendText(alice, 'hello from Node');
    await eventually('the browser reads the answer', async () => (await inPage('conversation', node.username)).some((m) => m.body === 'hello from Node'));

    // Reopened from IndexedDB (as after a reload), the browser has its history and its keys.
    await inPage('reopen', alice);
    const conversation = await inPage('conversation', node.username);
    expect(conversation.map((m) => [m.direction, m.body])).toEqual([
      ['outgoing', 'hello from a browser'],
      ['incoming', 'hello from Node'],
    ]);
    expect(await inPage('safetyNumber', node.username)).toBe((await node.safetyNumber(alice)).digits);
  });
});
