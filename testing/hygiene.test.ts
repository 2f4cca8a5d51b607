/**
 * Secret hygiene (issue #9): a whole conversation runs against a real server
 * logging at trace, with every client's SDK log at debug and the CLI's log on
 * stderr. No key, plaintext, token or code appears in any of it, in any form
 * testing/hygiene.ts knows. The logs must also show the events the
 * conversation caused, so that an empty or unwired log cannot pass.
 */
import { execFile } from 'node:child_process';
import { inspect, promisify } from 'node:util';

import { ParleyClient, type LogSink } from '@parley/client';
import { nodePlatform } from '@parley/client/node';
import { afterAll, beforeAll, describe, expect, it, vi, type MockSettledResult } from 'vitest';

import { ServerApi } from '../packages/client/src/api.js';
import { contextOf } from '../packages/client/src/client.js';
import { parseLinkCode } from '../packages/client/src/linking.js';
import { cliBin } from './cli.js';
import { Cast, eventually, texts, waitFor } from './clients.js';
import { encodings, Secrets } from './hygiene.js';
import { freshStorage, spawnServer, type ServerProcess, type Storage } from './server.js';

const run = promisify(execFile);

/** Events the conversation must have logged: without them, a clean log proves nothing. */
const EXPECTED_EVENTS = [
  'connection.state',
  'connection.closed',
  'connection.retry',
  'frame.sent',
  'frames.received',
  'envelope.processed',
  'mailbox.drained',
  'session.started',
  'send.stored',
  'devices.changed',
  'prekeys.refilled',
  'link.started',
  'link.completed',
  'device.unlinked',
  'group.changed',
];

let storage: Storage;
/** Every server process of the suite (each test starts its own, a restart another), for their output. */
const servers: ServerProcess[] = [];
const server = () => servers.at(-1)!;
/** Everything a test meets, searched for in every log: a secret of one test must not leak in another's either. */
const secrets = new Secrets();

/** Starts a server on the suite's storage, logging everything, on `port` (a restart) or a free one. */
async function startServer(port = '0'): Promise<void> {
  servers.push(await spawnServer(storage, ['--log-level', 'trace', '--port', port]));
}

/** Watches, calling through to the real code, the calls that give the clients of this process tokens and codes. */
function watchTokensAndCodes() {
  return {
    token: vi.spyOn(ServerApi.prototype, 'token'),
    linkToken: vi.spyOn(ServerApi.prototype, 'linkToken'),
    startLink: vi.spyOn(ParleyClient.prototype, 'startLink'),
    requestLink: vi.spyOn(ParleyClient, 'requestLink'),
  };
}

/** What the calls a spy watched resolved with. */
const fulfilled = <T>(results: readonly MockSettledResult<T>[]): T[] => results.flatMap((r) => (r.type === 'fulfilled' ? [r.value] : []));

/** Records as secrets every login token, link token and code the watched calls handed out. */
function recordTokensAndCodes(watched: ReturnType<typeof watchTokensAndCodes>): void {
  for (const token of fulfilled(watched.token.mock.settledResults)) {
    secrets.add('login token', token);
    secrets.add('decoded login token', Buffer.from(token, 'base64url')); // as the auth frame carries it
  }
  for (const grant of fulfilled(watched.linkToken.mock.settledResults)) secrets.add('link token', grant.linkToken);
  for (const pending of fulfilled(watched.startLink.mock.settledResults)) addCode('link', pending.code);
  for (const request of fulfilled(watched.requestLink.mock.settledResults)) addCode('join', request.code);
}

/** A link or join code, and the provisioning secret and relay address inside it. */
function addCode(kind: 'link' | 'join', code: string): void {
  const parsed = parseLinkCode(code, kind);
  secrets.add(`${kind} code`, code);
  secrets.add(`provisioning secret of a ${kind} code`, parsed.secret);
}

/** A text no log has any business holding, recorded as a secret. */
function plaintext(what: string): string {
  const text = `${what} ${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
  secrets.add(`plaintext "${what}"`, text);
  return text;
}

/** The names of the events in JSON log lines. */
const eventsIn = (lines: readonly string[]) => new Set(lines.map((line) => (JSON.parse(line) as { event: string }).event));

beforeAll(async () => {
  storage = await freshStorage('sqlite');
});

afterAll(async () => {
  vi.restoreAllMocks();
  for (const s of servers) await s.stop();
  await storage.drop();
});

describe('secret hygiene', () => {
  it('the search finds a secret planted in any form, inside other bytes', () => {
    const secret = new Uint8Array(32).map((_, i) => (i * 37 + 11) & 0xff);
    const planted = new Secrets();
    planted.add('planted', secret);
    expect(planted.leaksIn('nothing here')).toEqual([]);
    for (const offset of [0, 1, 2]) {
      const around = Buffer.concat([Buffer.alloc(offset, 0xaa), secret, Buffer.alloc(2, 0x55)]);
      for (const alphabet of ['base64', 'base64url', 'hex'] as const) {
        expect(planted.leaksIn(`{"key":"${around.toString(alphabet)}"}`)).not.toEqual([]);
      }
    }
    for (const [form, needle] of encodings(secret)) expect(planted.leaksIn(`x${needle}y`), form).not.toEqual([]);
    expect(planted.leaksIn(`bytes: ${String(secret)}`)).toContain('planted: decimal');
    planted.add('a text', 'a sentence nobody logs');
    expect(planted.leaksIn('{"msg":"a sentence nobody logs"}')).toContain('a text: raw');
  });

  it('a whole conversation leaves no key, plaintext, token or code in the server log (trace) or the clients\' logs (debug)', async () => {
    const watched = watchTokensAndCodes();
    await startServer();
    const firstServer = servers.length - 1;
    const clientLog: string[] = [];
    const sink: LogSink = (level, event, fields) => {
      clientLog.push(JSON.stringify({ level, event, ...fields }));
    };
    const cast = new Cast(() => server().url, sink);
    try {
      const alice = await cast.person('alice');
      const bob = await cast.person('bob');
      const carol = await cast.person('carol');
      for (const c of cast.clients) await secrets.addStoreOf(c); // the first one-time prekeys, before sessions use them up
      const alice2 = await cast.linkTo(alice);
      const bob2 = await cast.requestLinkTo(bob);

      // One-to-one, both ways, reaching every device.
      const hello = plaintext('hello bob');
      const reply = plaintext('hello alice');
      await alice.sendText(bob.username, hello);
      await eventually('bob read alice', async () => (await texts(bob, alice.username)).includes(hello));
      await bob.sendText(alice.username, reply);
      for (const device of [alice2, bob2]) {
        const peer = device === alice2 ? bob.username : alice.username;
        await eventually(`${device.username}.${device.deviceId} has both`, async () => (await texts(device, peer)).join('|') === `${hello}|${reply}`);
      }

      // A group, with a message from its creator and one from a member.
      const group = await alice.createGroup(plaintext('group title'), [bob.username, carol.username]);
      const announcement = plaintext('group hello');
      await alice.sendGroupText(group.id, announcement);
      await eventually('carol is in the group', async () => (await carol.groups()).some((g) => g.id === group.id));
      const answer = plaintext('group answer');
      await carol.sendGroupText(group.id, answer);
      await eventually('bob2 read the group', async () => (await bob2.groupConversation(group.id)).filter((m) => m.kind === 'text').length === 2);

      // Safety numbers, compared and marked verified.
      const safety = await alice.safetyNumber(bob.username);
      secrets.add('safety number', safety.digits);
      secrets.add('safety number QR code', safety.scannable);
      await alice.verify(bob.username, safety.digits);
      expect((await bob.safetyNumber(alice.username)).digits).toBe(safety.digits);

      // The server restarts on the same port: every device reconnects, and logs in again.
      const port = new URL(server().url).port;
      await server().stop();
      await startServer(port);
      await Promise.all(cast.clients.filter((c) => c.connectionState !== 'online').map((c) => waitFor(c, 'connection', (e) => e.state === 'online')));
      const after = plaintext('after the restart');
      await carol.sendText(alice.username, after);
      await eventually('alice2 read carol', async () => (await texts(alice2, carol.username)).includes(after));

      // Alice unlinks her second device, which the server then disconnects for good.
      const closed = waitFor(alice2, 'connection', (e) => e.state === 'closed');
      await alice.unlinkDevice(alice2.deviceId);
      await closed;

      for (const c of cast.clients) await secrets.addStoreOf(c);
      // A control: the profile's own record, base64 as a careless log line would show it, gives its keys away.
      const record = (await contextOf(alice).store.get('local', 'device'))!;
      expect(secrets.leaksIn(Buffer.from(record).toString('base64')).filter((leak) => leak.includes(' local '))).toHaveLength(2); // identity and auth keys
      const inspected = cast.clients.map((c) => `${inspect(contextOf(c), { depth: 8 })}\n${JSON.stringify(contextOf(c).local)}`).join('\n');
      expect(secrets.leaksIn(inspected), 'inspect and JSON of the clients\' state').toEqual([]);
    } finally {
      await cast.close();
    }
    await server().stop(); // its last lines (shutting down) are searched too
    recordTokensAndCodes(watched);

    // What was searched for, and what was searched: neither may be empty.
    expect(secrets.count('login token')).toBeGreaterThanOrEqual(5); // one a device at least (a token outlives a restart)
    expect(secrets.count('link token')).toBe(2);
    expect(secrets.count('link code')).toBe(1);
    expect(secrets.count('join code')).toBe(1);
    expect(secrets.count('plaintext')).toBe(6);
    expect(secrets.size).toBeGreaterThan(1000); // keys: identity, auth, prekeys, sessions, sender keys
    const events = eventsIn(clientLog);
    expect(EXPECTED_EVENTS.filter((e) => !events.has(e)), 'events the clients never logged').toEqual([]);
    const serverLog = servers.slice(firstServer).map((s) => s.output()).join('\n');
    const serverLines = serverLog.split('\n').filter((line) => line.startsWith('{'));
    expect(serverLines.some((line) => line.includes('"route":"/v1/auth/token"'))).toBe(true);
    expect(serverLines.length).toBeGreaterThan(50);

    expect(secrets.leaksIn(serverLog), 'the server log').toEqual([]);
    expect(secrets.leaksIn(clientLog.join('\n')), 'the clients\' logs').toEqual([]);
  });

  it('the CLI\'s log (PARLEY_LOG=debug on stderr) holds no key or plaintext', async () => {
    await startServer();
    const cast = new Cast(() => server().url);
    const dave = cast.profile();
    const parley = async (...args: string[]) =>
      (await run(process.execPath, [cliBin, '--profile', dave.dir, ...args], { env: { ...process.env, PARLEY_LOG: 'debug' }, timeout: 60_000 })).stderr;
    try {
      const erin = await cast.person('erin');
      const name = `dave_${Math.random().toString(36).slice(2, 8)}`;
      const text = plaintext('from the command line');
      const stderr = (await parley('init', '--server', server().url, '--name', name)) + (await parley('send', erin.username, text));
      await eventually('erin read dave', async () => (await texts(erin, name)).includes(text));
      const client = await ParleyClient.open(nodePlatform(dave.dir));
      await secrets.addStoreOf(client);
      await client.close();

      const lines = stderr.split('\n').filter((line) => line !== '');
      expect(lines.every((line) => line.startsWith('{"time":'))).toBe(true);
      const events = eventsIn(lines);
      for (const event of ['connection.state', 'frame.sent', 'frames.received', 'prekeys.refilled', 'session.started', 'send.stored']) expect(events).toContain(event);
      expect(secrets.leaksIn(stderr), 'the CLI\'s stderr').toEqual([]);
    } finally {
      await cast.close();
      await server().stop();
    }
  });
});
