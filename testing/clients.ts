/**
 * Real Parley clients for end-to-end tests: each device has its own SQLite
 * profile in a temporary folder and talks to a real server process over real
 * HTTP and WebSockets. Helpers wait for what a test expects to happen, with a
 * deadline, so a test fails with a message instead of hanging.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ParleyClient, type ClientEvents, type LogSink, type StoredMessage } from '@parley/client';
import { nodePlatform } from '@parley/client/node';

/** Reconnect quickly in tests: a restarted server is back within a second. */
const BACKOFF = { initialMs: 50, maxMs: 500 };
/** What a test waits for happens within this long, or the test fails. */
export const WAIT_MS = 20_000;

/** One device's profile folder; it outlives the client, so a test can reopen it (or copy it, as a snapshot). */
export class Profile {
  readonly dir = mkdtempSync(join(tmpdir(), 'parley-client-'));
  readonly #log: LogSink | undefined;

  /** `log`: where the device's SDK log goes (none by default). */
  constructor(log?: LogSink) {
    this.#log = log;
  }

  platform() {
    return nodePlatform(this.dir, { backoff: BACKOFF, ...(this.#log === undefined ? {} : { log: this.#log }) });
  }

  async create(serverUrl: string, username: string): Promise<ParleyClient> {
    return ParleyClient.create(this.platform(), serverUrl, username);
  }

  async open(): Promise<ParleyClient> {
    return ParleyClient.open(this.platform());
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Resolves with the first event of `name` that `match` accepts, or rejects after WAIT_MS. */
export function waitFor<K extends keyof ClientEvents>(
  client: ParleyClient,
  name: K,
  match: (value: ClientEvents[K]) => boolean = () => true,
  what = String(name),
): Promise<ClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`${client.username}.${client.deviceId}: no ${what} within ${WAIT_MS} ms`));
    }, WAIT_MS);
    const off = client.events.on(name, (value) => {
      if (!match(value)) return;
      clearTimeout(timer);
      off();
      resolve(value);
    });
  });
}

/** Polls `check` until it holds, or fails after WAIT_MS saying what was awaited. */
export async function eventually(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${WAIT_MS} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The texts of a conversation, oldest first (notices included, prefixed with "!"). */
export async function texts(client: ParleyClient, peer: string): Promise<string[]> {
  return (await client.conversation(peer, 1000)).map((m: StoredMessage) => (m.kind === 'notice' ? `!${m.body}` : m.body));
}

/**
 * The people of a test: each device a real client with its own profile, on
 * one server. `close` closes every client and removes every profile.
 */
export class Cast {
  readonly #serverUrl: () => string;
  readonly #log: LogSink | undefined;
  readonly profiles: Profile[] = [];
  readonly clients: ParleyClient[] = [];

  /**
   * `serverUrl` is read when a person is created, so a suite may restart its
   * server in between. `log`, if given, gets every device's SDK log.
   */
  constructor(serverUrl: () => string, log?: LogSink) {
    this.#serverUrl = serverUrl;
    this.#log = log;
  }

  /** A new, empty profile, kept for `close` to remove. */
  profile(): Profile {
    const profile = new Profile(this.#log);
    this.profiles.push(profile);
    return profile;
  }

  /** A new account (named `name` plus a random suffix, so suites never collide), connected. */
  async person(name: string): Promise<ParleyClient> {
    const profile = this.profile();
    const client = await profile.create(this.#serverUrl(), `${name}_${Math.random().toString(36).slice(2, 8)}`);
    this.clients.push(client);
    return online(client);
  }

  /** A new device of `existing`'s account, linked through its link code, connected. */
  async linkTo(existing: ParleyClient): Promise<ParleyClient> {
    const pending = await existing.startLink();
    const profile = this.profile();
    const linked = await ParleyClient.link(profile.platform(), pending.code);
    this.clients.push(linked);
    const done = await pending.done;
    if (done.deviceId !== linked.deviceId) throw new Error(`linking reported device ${done.deviceId}, the new client is ${linked.deviceId}`);
    return online(linked);
  }

  /** A new device of `existing`'s account, linked Signal's way round (it shows a join code, `existing` approves it), connected. */
  async requestLinkTo(existing: ParleyClient): Promise<ParleyClient> {
    const request = await ParleyClient.requestLink(this.profile().platform(), existing.serverUrl);
    const approved = await existing.approveLink(request.code);
    const linked = await request.done;
    this.clients.push(linked);
    if (approved.deviceId !== linked.deviceId) throw new Error(`approving reported device ${approved.deviceId}, the new client is ${linked.deviceId}`);
    return online(linked);
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
    for (const p of this.profiles) p.remove();
  }
}

async function online(client: ParleyClient): Promise<ParleyClient> {
  const connected = waitFor(client, 'connection', (c) => c.state === 'online', 'connection');
  client.connect();
  await connected;
  return client;
}
