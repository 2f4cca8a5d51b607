/**
 * Faults against a real server process (SECURITY-TESTS rows 19–21, 23):
 * SIGKILL in the middle of a stream of sends, graceful shutdown, a full
 * mailbox, hostile frames that must close only their own connection, a flood
 * from one device, and devices that never read their socket. Memory is
 * checked where the server says how much it holds (/metrics gauges) and, more
 * coarsely, by its resident size.
 *
 * The crash points of faultPoints.ts are in faultPoints.test.ts, and the
 * reconnect storm in reconnectStorm.test.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { encodeClientFrame } from '@parley/protocol';

import { seededRandom } from '../../../testing/random.js';
import { engineCases, useServer } from '../../../testing/server.js';
import { Connection, everyDevice, http, TestAccount, to } from '../../../testing/device.js';
import { MiB, residentBytes, restart, watchGauge, watchMemory } from '../../../testing/faults.js';
import { Cast, eventually } from '../../../testing/clients.js';
import { CloseCode } from './errors.js';
import { MAX_ENVELOPE_BYTES, MAX_FRAME_BYTES, MAX_INFLIGHT_BYTES, MAX_MAILBOX_ENVELOPES, MAX_PENDING_SENDS, MAX_UNSENT_BYTES } from './limits.js';

/** Sends in the flood, each of 1 KiB, fired without waiting for answers. */
const FLOOD = 4_000;
/** Sends to a device that never reads, each of SLOW_BODY_BYTES: 20 MiB for it, ten times one window. */
const SLOW_SENDS = 320;
const SLOW_BODY_BYTES = 64 * 1024;
/**
 * Coarse, beside the gauge: 40 MiB pass through the server, so a server that
 * kept every envelope for the slow reader could pass this, but not one that
 * kept a copy per push or leaked the bodies.
 */
const SLOW_GROWTH_BOUND = 128 * MiB;
/** Sends a device that never reads may write before the server stops reading it; the kernel's buffers take the first few MiB of answers. */
const MAX_FLOOD_SENDS = 600_000;
/** The server is taken to have stopped reading a socket whose own buffer stays over 1 MiB this long. */
const HELD_MS = 1_000;

const encode = (n: number) => new TextEncoder().encode(String(n));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Writes the frames of `send` on `connection` as fast as its socket takes
 * them, until the server stops reading it (HELD_MS) or MAX_FLOOD_SENDS are
 * written. Resolves with how many were written, and whether they were held.
 */
async function floodUntilHeld(connection: Connection, send: () => void): Promise<{ sends: number; held: boolean }> {
  let sends = 0;
  let stalledSince: number | undefined;
  while (sends < MAX_FLOOD_SENDS) {
    if (connection.socket.bufferedAmount > MiB) {
      stalledSince ??= Date.now();
      if (Date.now() - stalledSince > HELD_MS) return { sends, held: true };
      await sleep(10);
      continue;
    }
    stalledSince = undefined;
    for (let i = 0; i < 500; i++, sends++) send();
    await new Promise(setImmediate);
  }
  return { sends, held: false };
}
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

describe.each(engineCases)('faults on $title', (engineCase) => {
  const { available } = engineCase;
  const suite = useServer(engineCase);
  const cast = new Cast(() => suite.server.url);
  afterAll(async () => {
    await cast.close();
  });
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
    // A real client is told too: its text fails with the server's code and is marked failed, never left sending.
    const client = await cast.person('alice');
    await expect(client.sendText(bob.username, 'into a full mailbox')).rejects.toMatchObject({ code: 'SEND_REFUSED', serverCode: 'MAILBOX_FULL' });
    expect((await client.conversation(bob.username, 10)).map((m) => m.status)).toEqual(['failed']);
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

    // In the middle of a stream of sends: only that connection closes, and what it was told is stored is delivered.
    const carol = await TestAccount.register(suite.server.url, name('carol'));
    const streaming = await bob.devices[0]!.connect(suite.server.wsUrl);
    const sends = stream(streaming, carol, 8);
    await eventually('some sends acknowledged before the bad frame', () => sends.acknowledged.length >= 20);
    streaming.socket.send(Uint8Array.of(0xff, 0xff, 0xff));
    expect((await streaming.closed).code).toBe(CloseCode.MALFORMED_FRAME);
    await sends.stop();
    const delivered = await drain(await carol.devices[0]!.connect(suite.server.wsUrl));
    expect(sends.acknowledged.filter((n) => !delivered.includes(n))).toEqual([]);

    // The server and every other connection are unharmed.
    expect((await http(suite.server.url, 'GET', '/healthz')).status).toBe(200);
    expect((await bystander.request([to(bob, () => encode(7))])).kind).toBe('sent');
    expect(bystander.socket.readyState).toBe(WebSocket.OPEN);
    await bystander.close();
  });
  it.skipIf(!available)('a flood from one device is held to MAX_PENDING_SENDS by TCP backpressure, loses nothing, and slows nobody else out', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const carol = await TestAccount.register(suite.server.url, name('carol'));
    const dave = await TestAccount.register(suite.server.url, name('dave'));
    const flooder = await alice.devices[0]!.connect(suite.server.wsUrl);
    const bystander = await carol.devices[0]!.connect(suite.server.wsUrl);
    const depth = watchGauge(suite.server, 'parley_write_queue_depth');

    // Everything at once, never waiting for an answer: the server must stop reading rather than queue it all.
    const body = new Uint8Array(1024);
    const requests = Array.from({ length: FLOOD }, () => flooder.submit([to(bob, () => body)]));
    for (let i = 0; i < 10; i++) expect((await bystander.request([to(dave, () => encode(i))])).kind).toBe('sent');
    const answers = [];
    for (const id of requests) answers.push(await flooder.answer(id, 60_000));
    const deepest = await depth.stop();

    expect(answers.filter((a) => a.kind !== 'sent')).toEqual([]);
    // The frames of the TCP read that reached the limit are still handled: at most a 64 KiB read of them.
    expect(deepest).toBeLessThanOrEqual(MAX_PENDING_SENDS + 64);
    expect(flooder.socket.readyState).toBe(WebSocket.OPEN);
    const inbox = await bob.devices[0]!.connect(suite.server.wsUrl);
    expect(await drain(inbox)).toHaveLength(FLOOD);
    await Promise.all([inbox.close(), flooder.close(), bystander.close()]);
  }, 120_000);

  it.skipIf(!available)('a device that never reads its socket holds one window of envelopes, and its other device and everyone else keep receiving', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const slowDevice = await bob.link(bob.devices[0]!);
    const carol = await TestAccount.register(suite.server.url, name('carol'));
    const dave = await TestAccount.register(suite.server.url, name('dave'));
    const slow = await slowDevice.connect(suite.server.wsUrl);
    slow.socket.pause(); // TCP: the server's writes fill the kernel's buffers, then pile up in the server unless it stops pushing
    const reader = await bob.devices[0]!.connect(suite.server.wsUrl);
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    const bystander = await carol.devices[0]!.connect(suite.server.wsUrl);
    const before = residentBytes(suite.server.process.pid!);
    const memory = watchMemory(suite.server);
    const unsent = watchGauge(suite.server, 'parley_unsent_bytes');

    const body = new Uint8Array(SLOW_BODY_BYTES);
    const reading = (async () => {
      for (let n = 0; n < SLOW_SENDS; n++) reader.ack([(await reader.next('envelope', undefined, 30_000)).envelope.id]);
    })();
    for (let i = 0; i < SLOW_SENDS; i += 16) {
      const answers = await Promise.all(Array.from({ length: 16 }, () => sender.answer(sender.submit([to(bob, () => body)]), 30_000)));
      expect(answers.every((a) => a.kind === 'sent')).toBe(true);
    }
    await reading; // the device that reads got everything while the other read nothing
    expect((await bystander.request([to(dave, () => encode(1))])).kind).toBe('sent');
    const held = await unsent.stop();
    const peak = memory.stop();

    // What the server holds for the slow reader is one window, however much is stored for it.
    expect(held).toBeLessThanOrEqual(MAX_INFLIGHT_BYTES + MAX_ENVELOPE_BYTES + 64 * 1024);
    expect(peak - before).toBeLessThan(SLOW_GROWTH_BOUND);
    slow.socket.resume();
    const late = [];
    while (late.length < SLOW_SENDS) {
      const envelope = (await slow.next('envelope', undefined, 30_000)).envelope;
      late.push(envelope.id);
      slow.ack([envelope.id]);
    }
    expect(late).toEqual([...late].sort((a, b) => a - b));
    expect(new Set(late).size).toBe(SLOW_SENDS);
    await Promise.all([slow.close(), reader.close(), sender.close(), bystander.close()]);
  }, 120_000);

  // Refused before storage, so the engine plays no part: run once, as this is the slowest scenario of the file.
  it.runIf(engineCase.engine === 'sqlite')('a device that sends without reading its answers stops being read past MAX_UNSENT_BYTES, and gets every answer once it reads', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const carol = await TestAccount.register(suite.server.url, name('carol'));
    const flooder = await alice.devices[0]!.connect(suite.server.wsUrl);
    flooder.socket.pause();
    const unsent = watchGauge(suite.server, 'parley_unsent_bytes');
    // A stale registration id: refused at once, without storage, with an answer larger than the send.
    const stale = { username: bob.username, messages: [{ deviceId: 1, registrationId: (bob.devices[0]!.registrationId % 16_383) + 1, type: 2, body: Uint8Array.of(0) }] };
    const written = await floodUntilHeld(flooder, () => flooder.submit([stale]));
    const held = await unsent.stop();

    expect(held).toBeLessThanOrEqual(MAX_UNSENT_BYTES + MiB);
    expect(written.held).toBe(true);
    const bystander = await carol.devices[0]!.connect(suite.server.wsUrl);
    expect((await bystander.request([to(bob, () => encode(1))])).kind).toBe('sent');
    // Reading again, the device gets an answer to every send it wrote, in order: nothing was dropped to save memory.
    flooder.socket.resume();
    const answers = () => flooder.pending.filter((frame) => frame.kind !== 'drained');
    await eventually(`an answer to each of the ${written.sends} sends`, () => answers().length >= written.sends);
    expect(answers().map((frame) => (frame.kind === 'refused' ? frame.requestId : frame.kind))).toEqual(Array.from({ length: written.sends }, (_, i) => i + 1));
    expect(flooder.socket.readyState).toBe(WebSocket.OPEN);
    await Promise.all([flooder.close(), bystander.close()]);
  }, 120_000);
});
