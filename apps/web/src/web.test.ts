/**
 * The web client end to end: its production build, served by a real
 * parley-server under its Content-Security-Policy, driven in headless
 * Chromium as people use it (by roles and labels), beside `parley` CLI
 * processes. The browser reaches the server through a recording proxy
 * (testing/maliciousServer.ts, passing everything) so that one test can check
 * every frame and stored row for plaintext, and another can swap a key.
 *
 * Screenshots of the main screens go to artifacts/web/ (not committed).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import SQLite from 'better-sqlite3';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createNodeProvider } from '@parley/crypto/node';
import { encodeClientFrame, encodeServerFrame, generateIdentityKeyPair, utf8 } from '@parley/protocol';

import { browserAvailable, browserTitle, launchBrowser } from '../../../testing/browser.js';
import { Cli } from '../../../testing/cli.js';
import { Profile } from '../../../testing/clients.js';
import { startMaliciousServer, type HttpHook, type MaliciousServer } from '../../../testing/maliciousServer.js';
import { swapIdentityKey } from '../../../testing/misbehaviours.js';
import { freshStorage, spawnServer, type ServerProcess, type Storage } from '../../../testing/server.js';

const webRoot = fileURLToPath(new URL('..', import.meta.url));
const artifacts = fileURLToPath(new URL('../../../artifacts/web/', import.meta.url));
/** How long a person would wait for something to show. */
const SHOWS_MS = 20_000;

const suffix = Math.random().toString(36).slice(2, 7);
const alice = `alice_${suffix}`;
const bob = `bob_${suffix}`;
const dave = `dave_${suffix}`;
const erin = `erin_${suffix}`;

let dist: string | undefined;
let storage: Storage | undefined;
let server: ServerProcess | undefined;
let proxy: MaliciousServer | undefined;
let browser: Browser | undefined;
const cli = new Cli();
/** Every frame and HTTP body that passed between the browsers and the server, as bytes. */
const wire: Uint8Array[] = [];
const people = new Map<string, { context: BrowserContext; page: Page }>();
/** What went wrong in each page: uncaught errors and console errors. */
const problems = new Map<Page, string[]>();

async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, `${name}.png`) });
}

/** A new browser profile (its own IndexedDB) with Parley open. */
async function openBrowser(viewport = { width: 1200, height: 800 }): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser!.newContext({ viewport });
  const page = await context.newPage();
  const seen: string[] = [];
  problems.set(page, seen);
  page.on('pageerror', (error) => seen.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') seen.push(message.text());
  });
  await page.goto(proxy!.url);
  return { context, page };
}

/** Creates an account in a new browser profile. */
async function register(username: string) {
  const person = await openBrowser();
  await person.page.getByLabel('Username').waitFor({ timeout: SHOWS_MS });
  if (people.size === 0) await screenshot(person.page, '00-welcome');
  await person.page.getByLabel('Username').fill(username);
  await person.page.getByRole('button', { name: 'Create account' }).click();
  await person.page.getByRole('heading', { level: 1, name: username }).waitFor({ timeout: SHOWS_MS });
  people.set(username, person);
  return person;
}

const pageOf = (username: string) => people.get(username)!.page;

async function openConversation(page: Page, peer: string): Promise<void> {
  await page.getByRole('button', { name: new RegExp(`^#?${peer}(,|$)`) }).click();
  await page.getByRole('region', { name: `Conversation with ${peer}` }).waitFor({ timeout: SHOWS_MS });
}

async function startChat(page: Page, peer: string): Promise<void> {
  await page.getByRole('button', { name: 'New chat' }).click();
  await page.getByLabel('Their username').fill(peer);
  await page.getByRole('button', { name: 'Start chat' }).click();
  await page.getByRole('region', { name: `Conversation with ${peer}` }).waitFor({ timeout: SHOWS_MS });
}

async function send(page: Page, text: string): Promise<void> {
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.getByLabel('Message', { exact: true }).press('Enter');
}

/** The message bubble whose text is `text` exactly (a bubble's text runs into its time: "note 6" + "03:04" holds "note 60"). */
const bubble = (page: Page, text: string, status = 'li.message') => page.locator(status).filter({ has: page.getByText(text, { exact: true }) });

const PROGRESS = ['sending', 'sent', 'delivered', 'read'] as const;

/** Resolves once the message holding `text` shows `status` (its tick) or a later one: a read receipt may overtake the delivery one. */
async function tick(page: Page, text: string, status: 'sent' | 'delivered' | 'read'): Promise<void> {
  const reached = PROGRESS.slice(PROGRESS.indexOf(status)).map((s) => `li.message[data-status="${s}"]`);
  await bubble(page, text, reached.join(', ')).waitFor({ timeout: SHOWS_MS });
}

/** The texts of the open conversation, in order. */
async function shownTexts(page: Page): Promise<string[]> {
  return page.locator('li.message .body').allInnerTexts();
}

const asBuffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const contains = (haystack: Uint8Array, needle: Uint8Array): boolean => asBuffer(haystack).includes(asBuffer(needle));

/** The proxy's usual HTTP hook: records every JSON exchange, changes nothing. */
const record: HttpHook = ({ request, body }) => {
  wire.push(utf8(JSON.stringify({ request, body })));
};

/** The safety number Bob's own browser shows for Alice: the number Alice must see for Bob. */
async function bobSafetyNumber(): Promise<string | null> {
  const b = pageOf(bob);
  await b.getByRole('button', { name: 'Safety number' }).click();
  const digits = b.getByRole('list', { name: 'Safety number' });
  await digits.waitFor({ timeout: SHOWS_MS });
  const shown = await digits.getAttribute('data-digits');
  await b.getByRole('button', { name: `Back to the conversation with ${alice}` }).click();
  return shown;
}

describe.skipIf(!browserAvailable)(`the web client ${browserTitle}`, () => {
  beforeAll(async () => {
    dist = mkdtempSync(join(tmpdir(), 'parley-web-'));
    await build({ root: webRoot, configFile: join(webRoot, 'vite.config.ts'), logLevel: 'warn', build: { outDir: dist, emptyOutDir: true } });
    storage = await freshStorage('sqlite');
    server = await spawnServer(storage, ['--web', dist]);
    proxy = await startMaliciousServer(server.url);
    proxy.onClientFrame((frame) => { wire.push(encodeClientFrame(frame)); });
    proxy.onServerFrame((frame) => { wire.push(encodeServerFrame(frame)); });
    proxy.onHttpResponse(record);
    browser = await launchBrowser();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await proxy?.close();
    await server?.stop();
    await storage?.drop();
    if (dist !== undefined) rmSync(dist, { recursive: true, force: true });
    cli.remove();
  });

  it('is served under a Content-Security-Policy with no inline script, no eval, and connections to its own origin only', async () => {
    const answer = await fetch(`${server!.url}/`);
    expect(answer.status).toBe(200);
    const policy = answer.headers.get('content-security-policy') ?? '';
    expect(policy).toContain("script-src 'self'");
    expect(policy).toContain("connect-src 'self'");
    expect(policy).not.toMatch(/unsafe-inline|unsafe-eval/);
    const page = await answer.text();
    expect(page).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // every script is a file
  });

  it('two browsers register, talk both ways, and see delivered and read ticks and typing', async () => {
    const a = await register(alice);
    await screenshot(a.page, '02-no-conversations');
    const b = await register(bob);

    await startChat(a.page, bob);
    await send(a.page, 'hello bob, from a browser');
    await tick(a.page, 'hello bob, from a browser', 'delivered');

    // Bob's list shows the conversation, unread, with its preview.
    const listed = b.page.getByRole('button', { name: `${alice}, 1 unread` });
    await listed.waitFor({ timeout: SHOWS_MS });
    expect(await listed.innerText()).toContain('hello bob, from a browser');
    await screenshot(b.page, '03-conversation-list');
    await listed.click();
    await bubble(b.page, 'hello bob, from a browser').waitFor({ timeout: SHOWS_MS });
    await tick(a.page, 'hello bob, from a browser', 'read');

    await b.page.getByLabel('Message', { exact: true }).fill('typing an answer');
    await a.page.getByText(`${bob} is typing…`).waitFor({ timeout: SHOWS_MS });
    await b.page.getByLabel('Message', { exact: true }).press('Enter');
    await bubble(a.page, 'typing an answer').waitFor({ timeout: SHOWS_MS });
    await tick(b.page, 'typing an answer', 'read'); // Alice has the conversation open
    await a.page.getByText(`${bob} is typing…`).waitFor({ state: 'hidden', timeout: SHOWS_MS });
    expect(await shownTexts(a.page)).toEqual(['hello bob, from a browser', 'typing an answer']);
    await screenshot(a.page, '04-conversation');
    expect([...problems.get(a.page)!, ...problems.get(b.page)!]).toEqual([]);
  });

  it('a browser and the parley CLI chat with each other', async () => {
    expect((await cli.run(dave, 'init', '--server', server!.url, '--name', dave)).code).toBe(0);
    const sent = await cli.run(dave, 'send', alice, 'hello from the command line');
    expect(sent.code, sent.stderr).toBe(0);

    const page = pageOf(alice);
    await openConversation(page, dave);
    await bubble(page, 'hello from the command line').waitFor({ timeout: SHOWS_MS });
    await send(page, 'hello terminal, from a browser');
    await tick(page, 'hello terminal, from a browser', 'sent');

    let shown = '';
    for (let tries = 0; tries < 20 && !shown.includes('hello terminal, from a browser'); tries++) shown = (await cli.run(dave, 'inbox', alice)).stdout;
    expect(shown).toContain('hello terminal, from a browser');
    await tick(page, 'hello terminal, from a browser', 'read'); // showing it in the CLI sends the read receipt
  });

  it('a browser linked as a second device of a CLI account gets the history window, then new messages', async () => {
    expect((await cli.run(erin, 'init', '--server', server!.url, '--name', erin)).code).toBe(0);
    expect((await cli.run(erin, 'send', alice, 'written before the browser was linked')).code).toBe(0);

    const linked = await openBrowser();
    await linked.page.getByRole('button', { name: 'Link this browser' }).click();
    const code = linked.page.getByRole('textbox', { name: 'Link code', exact: true });
    await code.waitFor({ timeout: SHOWS_MS });
    await screenshot(linked.page, '01-link-this-browser');
    const approved = await cli.run(erin, 'devices', 'approve', await code.inputValue());
    expect(approved.code, approved.stderr).toBe(0);
    await linked.page.getByRole('heading', { level: 1, name: erin }).waitFor({ timeout: SHOWS_MS });
    people.set(erin, linked);

    await openConversation(linked.page, alice);
    await bubble(linked.page, 'written before the browser was linked').waitFor({ timeout: SHOWS_MS });
    await openConversation(pageOf(alice), erin);
    await send(pageOf(alice), 'to both of your devices');
    await bubble(linked.page, 'to both of your devices').waitFor({ timeout: SHOWS_MS });
    expect((await cli.run(erin, 'inbox', alice)).stdout).toContain('to both of your devices');

    await linked.page.getByRole('button', { name: 'Devices' }).click();
    const list = linked.page.getByRole('list', { name: 'Linked devices' });
    await list.getByText('(this browser)').waitFor({ timeout: SHOWS_MS });
    expect(await list.getByRole('listitem').count()).toBe(2);
    await screenshot(linked.page, '08-devices');

    // The other way round: the browser shows a link code, and a new CLI profile enters it.
    await linked.page.getByRole('button', { name: 'Show a link code' }).click();
    const offered = linked.page.getByRole('textbox', { name: 'Link code', exact: true });
    await offered.waitFor({ timeout: SHOWS_MS });
    const laptop = cli.spawn(`${erin}_laptop`, '--json', 'link');
    laptop.stdin.end(`${await offered.inputValue()}\n`);
    expect(await new Promise((resolve) => laptop.on('exit', resolve))).toBe(0);
    await linked.page.getByText('Device 3 is linked.').waitFor({ timeout: SHOWS_MS });
    expect((await cli.run(`${erin}_laptop`, 'inbox', alice)).stdout).toContain('to both of your devices');

    await list.getByRole('button', { name: 'Unlink…' }).first().click();
    await list.getByRole('button', { name: 'Unlink device 1' }).click();
    await linked.page.getByText('Device 1 is unlinked.').waitFor({ timeout: SHOWS_MS });
    expect(await list.getByRole('listitem').allInnerTexts()).toEqual(['Device 2 (this browser)', expect.stringContaining('Device 3')]);
  });

  it('a group made in a browser carries messages between browsers and the CLI, each member seeing the others', async () => {
    const a = pageOf(alice);
    await a.getByRole('button', { name: 'New group' }).click();
    await a.getByLabel('Group name').fill('Trip');
    await a.getByLabel(/Members/).fill(`${bob}, ${dave}`);
    await a.getByRole('button', { name: 'Create group' }).click();
    await a.getByRole('region', { name: 'Conversation with Trip' }).waitFor({ timeout: SHOWS_MS });
    await send(a, 'who brings the tent?');
    await tick(a, 'who brings the tent?', 'sent');

    const b = pageOf(bob);
    const listed = b.getByRole('button', { name: 'Trip, 1 unread' });
    await listed.waitFor({ timeout: SHOWS_MS });
    await listed.click();
    await bubble(b, 'who brings the tent?').waitFor({ timeout: SHOWS_MS });
    expect(await bubble(b, 'who brings the tent?').locator('.author').innerText()).toBe(alice);
    await send(b, 'I will');
    await bubble(a, 'I will').waitFor({ timeout: SHOWS_MS });
    await screenshot(a, '05-group');

    expect((await cli.run(dave, 'group', 'send', 'Trip', 'and I bring the stove')).code).toBe(0);
    await bubble(a, 'and I bring the stove').waitFor({ timeout: SHOWS_MS });
    await bubble(b, 'and I bring the stove').waitFor({ timeout: SHOWS_MS });
    const read = (await cli.run(dave, 'group', 'read', 'Trip')).stdout;
    expect(read).toContain(`${alice}: who brings the tent?`);
    expect(read).toContain(`${bob}: I will`);
  });

  it('a long conversation opens at its newest messages, and earlier ones load on request', async () => {
    const profile = new Profile();
    const frank = await profile.create(proxy!.url, `frank_${suffix}`);
    try {
      for (let i = 1; i <= 60; i++) await frank.sendText(alice, `note ${i}`);
    } finally {
      await frank.close();
      profile.remove();
    }
    const page = pageOf(alice);
    await openConversation(page, frank.username);
    await bubble(page, 'note 60').waitFor({ timeout: SHOWS_MS });
    expect(await page.locator('li.message').count()).toBe(50);
    await page.getByRole('button', { name: 'Earlier messages' }).click();
    await bubble(page, 'note 1').waitFor({ timeout: SHOWS_MS });
    expect(await shownTexts(page)).toEqual(Array.from({ length: 60 }, (_, i) => `note ${i + 1}`));
  });

  it('works from the keyboard alone, with the focus always visible', async () => {
    const page = pageOf(alice);
    // From the composer, Shift+Tab walks back through the conversation and the list to New chat.
    await page.getByLabel('Message', { exact: true }).focus();
    const focused = () => page.evaluate(() => ({ text: document.activeElement?.textContent.trim(), outline: getComputedStyle(document.activeElement!).outlineStyle }));
    for (let presses = 0; presses < 40 && (await focused()).text !== 'New chat'; presses++) await page.keyboard.press('Shift+Tab');
    expect(await focused()).toEqual({ text: 'New chat', outline: 'solid' });
    await page.keyboard.press('Enter');
    await page.keyboard.type(dave); // the form opens with its field focused
    await page.keyboard.press('Enter');
    await page.getByRole('region', { name: `Conversation with ${dave}` }).waitFor({ timeout: SHOWS_MS });
    await page.keyboard.type('typed, never clicked');
    await page.keyboard.press('Enter');
    await tick(page, 'typed, never clicked', 'sent');
  });

  it('a reload keeps every conversation, and what arrived while the page was closed shows once', async () => {
    const b = people.get(bob)!;
    await b.page.close();
    const a = pageOf(alice);
    await openConversation(a, bob);
    for (const text of ['while you were away 1', 'while you were away 2', 'while you were away 3']) await send(a, text);
    await tick(a, 'while you were away 3', 'sent');

    b.page = await b.context.newPage();
    await b.page.goto(proxy!.url);
    const listed = b.page.getByRole('button', { name: `${alice}, 3 unread` });
    await listed.waitFor({ timeout: SHOWS_MS });
    await listed.click();
    await bubble(b.page, 'while you were away 3').waitFor({ timeout: SHOWS_MS });
    const expected = ['hello bob, from a browser', 'typing an answer', 'while you were away 1', 'while you were away 2', 'while you were away 3'];
    expect(await shownTexts(b.page)).toEqual(expected);

    await b.page.reload();
    await openConversation(b.page, alice);
    await bubble(b.page, 'while you were away 3').waitFor({ timeout: SHOWS_MS });
    expect(await shownTexts(b.page)).toEqual(expected);
    await a.reload();
    await openConversation(a, bob);
    await tick(a, 'while you were away 3', 'read');
    expect(await shownTexts(a)).toEqual(expected);
  });

  it('a key the server swaps shows a banner in the conversation; comparing safety numbers and marking verified clears it', async () => {
    const a = pageOf(alice);
    const banner = a.getByRole('alert').filter({ hasText: 'safety number changed' });
    /** Leaves the conversation and opens it afresh: opening fetches the contact's key again. */
    const reopen = async () => {
      await a.getByRole('button', { name: 'New chat' }).click();
      await openConversation(a, bob);
    };
    proxy!.onHttpResponse(swapIdentityKey(bob, await generateIdentityKeyPair(createNodeProvider())));
    try {
      await reopen();
      await banner.waitFor({ timeout: SHOWS_MS });
      await screenshot(a, '06-key-change-banner');
    } finally {
      proxy!.onHttpResponse(record);
    }

    // Bob's real key again: a change too. This time Alice compares the numbers and marks Bob verified.
    await reopen();
    await banner.getByRole('button', { name: 'Verify safety number' }).click();
    const digits = a.getByRole('list', { name: 'Safety number' });
    await digits.waitFor({ timeout: SHOWS_MS });
    expect(await digits.getAttribute('data-digits')).toBe(await bobSafetyNumber());
    await a.getByRole('img', { name: `Safety number with ${bob} as a QR code` }).waitFor();
    await screenshot(a, '07-safety-number');
    await a.getByRole('button', { name: 'Mark as verified' }).click();
    await a.getByText(`You have verified ${bob}.`).waitFor({ timeout: SHOWS_MS });
    await a.getByRole('button', { name: `Back to the conversation with ${bob}` }).click();
    await a.getByText('✓ Verified').waitFor({ timeout: SHOWS_MS });
    expect(await banner.count()).toBe(0);
  });

  it('on a phone-wide screen the list and the conversation take turns', async () => {
    const phone = await people.get(bob)!.context.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(proxy!.url);
    await phone.getByText('Parley is open in another tab').waitFor({ timeout: SHOWS_MS }); // one tab holds the device
    await phone.close();

    const page = pageOf(bob);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole('button', { name: 'Back to conversations' }).click();
    await page.getByRole('button', { name: new RegExp(`^${alice}`) }).waitFor({ timeout: SHOWS_MS });
    await openConversation(page, alice);
    expect(await page.getByRole('complementary', { name: 'Conversations' }).isVisible()).toBe(false);
    await screenshot(page, '09-phone-conversation');
  });

  it('no plaintext the browsers sent appears in any WebSocket frame or HTTP body, nor in any row the server stored', async () => {
    const canary = `canary ${Math.random().toString(36).slice(2)} the server must never read`;
    const a = pageOf(alice);
    await openConversation(a, bob);
    await send(a, canary);
    await tick(a, canary, 'delivered');
    await bubble(pageOf(bob), canary).waitFor({ timeout: SHOWS_MS });
    await send(pageOf(bob), `re: ${canary}`);
    await bubble(a, `re: ${canary}`).waitFor({ timeout: SHOWS_MS });

    const sent = ['hello bob, from a browser', 'typing an answer', 'hello terminal, from a browser', 'who brings the tent?', 'I will', 'typed, never clicked', 'while you were away 2', canary, `re: ${canary}`];
    // The recording is real: it holds the traffic, and the search finds what is there.
    expect(wire.length).toBeGreaterThan(50);
    expect(wire.some((bytes) => contains(bytes, utf8(alice)))).toBe(true);
    for (const text of sent) {
      for (const encoding of [utf8(text), new Uint8Array(Buffer.from(text, 'utf16le'))]) {
        expect(wire.filter((bytes) => contains(bytes, encoding)), `"${text}" on the wire`).toEqual([]);
      }
    }

    // Every cell of every table of the server's database (SQLite in WAL mode reads beside the writer).
    const db = new SQLite(join(storage!.args[1]!, 'parley.sqlite'), { readonly: true });
    try {
      const tables = db.prepare("select name from sqlite_master where type = 'table'").all() as { name: string }[];
      const cells: Uint8Array[] = [];
      for (const { name } of tables) {
        for (const row of db.prepare(`select * from "${name}"`).all() as Record<string, unknown>[]) {
          for (const value of Object.values(row)) cells.push(value instanceof Uint8Array ? value : utf8(String(value)));
        }
      }
      expect(cells.some((cell) => contains(cell, utf8(alice)))).toBe(true);
      for (const text of sent) expect(cells.filter((cell) => contains(cell, utf8(text))), `"${text}" stored`).toEqual([]);
    } finally {
      db.close();
    }
  });
});
