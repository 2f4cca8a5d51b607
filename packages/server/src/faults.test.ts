/**
 * Faults against a real server process (SECURITY-TESTS rows 19–21, 23):
 * SIGKILL in the middle of a stream of sends, graceful shutdown, a full
 * mailbox, and hostile frames that must close only their own connection.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { encodeClientFrame } from '@parley/protocol';

import { seededRandom } from '../../../testing/random.js';
import { engineCases, spawnServer, useServer, type ServerProcess, type Storage } from '../../../testing/server.js';
import { Connection, everyDevice, http, TestAccount, to } from '../../../testing/device.js';
import { CloseCode } from './errors.js';
import { MAX_FRAME_BYTES, MAX_MAILBOX_ENVELOPES } from './limits.js';

const encode = (n: number) => new TextEncoder().encode(String(n));
const decode = (b: Uint8Array) => Number(new TextDecoder().decode(b));

/** Keeps `window` sends in flight from `sender` to `recipient` until stopped; returns the numbers the server acknowledged. */
function stream(sender: Connection, recipient: TestAccount, window: number, offset = 0) {
  const acknowledged: number[] = [];
  let next = 0;
  let stopped = false;
  const pump = async () => {
    while (!stopped) {
      const n = offset + next++;
      const answer = await sender.answer(sender.submit([to(recipient, () => encode(n))]), 30_000).catch(() => undefined);
      if (answer === undefined) return; // the connection died: this send is unacknowledged
      if (answer.kind === 'sent') acknowledged.push(n);
    }
  };
  const workers = Promise.all(Array.from({ length: window }, pump));
  return {
    acknowledged,
    sent: () => next,
    stop: async () => {
      stopped = true;
      await workers;
    },
  };
}

/** Every envelope until `drained`, acknowledged as it arrives. */
async function drain(connection: Connection): Promise<number[]> {
  const bodies: number[] = [];
  for (;;) {
    const frame = await connection.take((f) => f.kind === 'envelope' || f.kind === 'drained', 'envelope or drained', 30_000);
    if (frame.kind === 'drained') return bodies;
    if (frame.kind === 'envelope') {
      bodies.push(decode(frame.envelope.body));
      connection.ack([frame.envelope.id]);
    }
  }
}

/** The same server again on the same storage and port, as after a crash and a restart. */
function restart(server: ServerProcess, storage: Storage): Promise<ServerProcess> {
  return spawnServer(storage, ['--port', new URL(server.url).port]);
}

describe.each(engineCases)('faults on $title', (engineCase) => {
  const { available } = engineCase;
  const suite = useServer(engineCase);
  let counter = 0;
  const name = (prefix: string) => `${prefix}_${++counter}`;

  it.skipIf(!available)('kill -9 in the middle of a stream of sends: every acknowledged envelope arrives after restart, in order', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const random = seededRandom(19);
    const received: number[] = [];
    const acknowledged: number[] = [];

    for (let round = 0; round < 3; round++) {
      const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
      // Bob reads and acknowledges while the stream runs, so the kill also lands mid-delivery.
      const inbox = await bob.devices[0]!.connect(suite.server.wsUrl);
      const reading = (async () => {
        for (;;) {
          const frame = await inbox.next('envelope', undefined, 30_000).catch(() => undefined);
          if (frame === undefined) return;
          received.push(decode(frame.envelope.body));
          inbox.ack([frame.envelope.id]);
        }
      })();
      const sends = stream(sender, bob, 16, round * 1_000_000);
      await new Promise((resolve) => setTimeout(resolve, 150 + random() * 400));
      await suite.server.kill();
      await Promise.all([sends.stop(), reading]);
      expect(sends.acknowledged.length).toBeGreaterThan(0);
      acknowledged.push(...sends.acknowledged);
      suite.server = await restart(suite.server, suite.storage);
    }

    const inbox = await bob.devices[0]!.connect(suite.server.wsUrl);
    const after = await drain(inbox);
    await inbox.close();
    const everything = new Set([...received, ...after]);
    const lost = acknowledged.filter((n) => !everything.has(n));
    expect(lost).toEqual([]);
    // What was stored arrives in order: the numbers of each round increase along the mailbox.
    expect(after).toEqual([...after].sort((a, b) => a - b));
  });

  it.skipIf(!available)('graceful shutdown answers what it read, closes with 1001, and loses nothing', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    const sends = stream(sender, bob, 32);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const [exit, closed] = await Promise.all([suite.server.stop(), sender.closed]);
    await sends.stop();
    expect(exit).toBe(0);
    expect(closed.code).toBe(CloseCode.GOING_AWAY);
    expect(sends.acknowledged.length).toBeGreaterThan(0);

    suite.server = await restart(suite.server, suite.storage);
    const inbox = await bob.devices[0]!.connect(suite.server.wsUrl);
    const delivered = await drain(inbox);
    await inbox.close();
    expect(delivered.filter((n) => sends.acknowledged.includes(n))).toEqual(sends.acknowledged);
  });

  it.skipIf(!available)('a full mailbox refuses a send or multicast explicitly, storing nothing of it, and takes them again once drained', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const carol = await TestAccount.register(suite.server.url, name('carol'));
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    const sends = stream(sender, bob, 64);
    while (sends.acknowledged.length < MAX_MAILBOX_ENVELOPES) await new Promise((resolve) => setTimeout(resolve, 50));
    await sends.stop();
    expect(sends.acknowledged).toHaveLength(MAX_MAILBOX_ENVELOPES); // the rest were refused, not dropped
    const refused = await sender.request([to(bob, () => encode(-1))]);
    expect(refused).toMatchObject({ kind: 'refused', code: 'MAILBOX_FULL' });
    // A multicast is stored whole or not at all: Bob's full mailbox refuses it for Carol too.
    const multicast = await sender.multicast(7, encode(-3), [everyDevice(carol), everyDevice(bob)]);
    expect(multicast).toMatchObject({ kind: 'refused', code: 'MAILBOX_FULL' });
    const carolInbox = await carol.devices[0]!.connect(suite.server.wsUrl);
    expect(await drain(carolInbox)).toEqual([]);

    const inbox = await bob.devices[0]!.connect(suite.server.wsUrl);
    const delivered = await drain(inbox);
    expect(delivered).toEqual(sends.acknowledged);
    expect((await sender.request([to(bob, () => encode(-2))])).kind).toBe('sent');
    expect(decode((await inbox.envelopes(1))[0]!.body)).toBe(-2);
    expect((await sender.multicast(7, encode(-4), [everyDevice(carol), everyDevice(bob)])).kind).toBe('sent');
    for (const connection of [inbox, carolInbox]) expect(decode((await connection.envelopes(1))[0]!.body)).toBe(-4);
    await Promise.all([inbox.close(), carolInbox.close(), sender.close()]);
  }, 120_000);

  it.skipIf(!available)('hostile frames close only their own connection', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const bystander = await alice.devices[0]!.connect(suite.server.wsUrl);
    /** Sends one frame on a fresh connection, before or after logging in; resolves with the close code. */
    const raw = async (frame: string | Uint8Array) => {
      const connection = await Connection.open(suite.server.wsUrl);
      connection.socket.send(frame);
      return (await connection.closed).code;
    };
    const authenticated = async (frame: Uint8Array) => {
      const connection = await bob.devices[0]!.connect(suite.server.wsUrl);
      connection.socket.send(frame);
      return (await connection.closed).code;
    };

    expect(await raw('{"kind":"auth"}')).toBe(CloseCode.UNSUPPORTED_DATA);
    expect(await raw(Uint8Array.of(0xff, 0xff, 0xff))).toBe(CloseCode.MALFORMED_FRAME);
    expect(await raw(new Uint8Array(MAX_FRAME_BYTES + 1))).toBe(CloseCode.TOO_BIG);
    expect(await raw(encodeClientFrame({ kind: 'ack', ids: [1] }))).toBe(CloseCode.MALFORMED_FRAME);
    expect(await raw(encodeClientFrame({ kind: 'auth', token: new Uint8Array(53) }))).toBe(CloseCode.UNAUTHORIZED);
    expect(await authenticated(encodeClientFrame({ kind: 'auth', token: new Uint8Array(53) }))).toBe(CloseCode.MALFORMED_FRAME);
    expect(await authenticated(new Uint8Array(MAX_FRAME_BYTES + 1))).toBe(CloseCode.TOO_BIG);
    expect(await authenticated(Uint8Array.of(0x12, 0x05, 0x08))).toBe(CloseCode.MALFORMED_FRAME);

    const random = seededRandom(23);
    const junk = () => Uint8Array.from({ length: 1 + Math.floor(random() * 64) }, () => Math.floor(random() * 256));
    const before = await Promise.all(Array.from({ length: 100 }, () => raw(junk())));
    expect(before.every((code) => code === CloseCode.MALFORMED_FRAME || code === CloseCode.UNAUTHORIZED)).toBe(true);
    for (let i = 0; i < 30; i++) expect(await authenticated(junk())).toBe(CloseCode.MALFORMED_FRAME);

    // The server and every other connection are unharmed.
    expect((await http(suite.server.url, 'GET', '/healthz')).status).toBe(200);
    expect((await bystander.request([to(bob, () => encode(7))])).kind).toBe('sent');
    expect(bystander.socket.readyState).toBe(WebSocket.OPEN);
    await bystander.close();
  });
});
