/**
 * The provisioning relay against a real server process, with real WebSockets:
 * channels are created, joined and relay both ways in order; unknown and full
 * channels, malformed and oversized frames, departures, the rate limit and
 * shutdown close the right sockets with the right codes, and nothing else.
 * Lifetimes, timeouts, the channel cap, the message cap, backpressure and the
 * heartbeat are in relay.unit.test.ts, with a clock of its own.
 *
 * The relay touches no storage, so SQLite alone will do. The server trusts
 * X-Forwarded-For from 127.0.0.1, and each test speaks for client addresses of
 * its own, so that tests do not share rate-limit buckets.
 */
import { describe, expect, it } from 'vitest';

import { limits as wire } from '@parley/protocol';

import { CloseCode } from '../errors.js';
import { PROVISIONING_LIMITS } from '../limits.js';
import { TestAccount, to } from '../../../../testing/device.js';
import { RelayParty } from '../../../../testing/provisioning.js';
import { engineCases, freshStorage, spawnServer, useServer } from '../../../../testing/server.js';

const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array) => new TextDecoder().decode(b);
/** Byte equality without a deep comparison element by element (slow on MiBs). */
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
/** A message frame written by hand, whatever its body's length. */
const rawMessage = (bodyLength: number) => {
  const body = Buffer.alloc(bodyLength, 0x42);
  const inner = Buffer.concat([Buffer.from([0x0a]), varint(body.length), body]);
  return Buffer.concat([Buffer.from([0x1a]), varint(inner.length), inner]);
};
const varint = (value: number): Buffer => {
  const out: number[] = [];
  for (let v = value; ; v = Math.floor(v / 128)) {
    if (v < 0x80) {
      out.push(v);
      return Buffer.from(out);
    }
    out.push((v & 0x7f) | 0x80);
  }
};

const sqlite = engineCases.find((c) => c.engine === 'sqlite')!;

describe('provisioning relay', () => {
  const suite = useServer(sqlite, ['--trust-proxy', '127.0.0.1']);
  let counter = 0;
  /** A client address no other test uses. */
  const address = () => `198.18.${Math.floor(++counter / 256)}.${counter % 256}`;
  const open = (forwardedFor: string) => RelayParty.open(suite.server.url, { forwardedFor });
  /** A joined channel between two parties behind one client address. */
  const pair = async (client = address()) => {
    const a = await open(client);
    const channel = await a.create();
    const b = await open(client);
    await b.join(channel);
    await a.next('joined');
    return { a, b, channel };
  };

  it('creates a channel, joins it, and relays both ways in order', async () => {
    const client = address();
    const a = await open(client);
    const channel = await a.create();
    expect(channel).toBeInstanceOf(Uint8Array);
    expect(channel.length).toBe(16);
    const b = await open(client);
    b.send({ kind: 'join', address: channel });
    // The joiner may send right behind its join: it is paired as soon as the join is read.
    b.send({ kind: 'message', body: text('hello from b') });
    await b.next('joined');
    await a.next('joined');
    expect(read((await a.messages(1))[0]!)).toBe('hello from b');

    for (let i = 0; i < 50; i++) {
      a.send({ kind: 'message', body: text(`a${i}`) });
      b.send({ kind: 'message', body: text(`b${i}`) });
    }
    const [atB, atA] = await Promise.all([b.messages(50), a.messages(50)]);
    expect(atB.map(read)).toEqual(Array.from({ length: 50 }, (_, i) => `a${i}`));
    expect(atA.map(read)).toEqual(Array.from({ length: 50 }, (_, i) => `b${i}`));

    // The largest body goes through whole, and a one-byte body too.
    const largest = new Uint8Array(wire.MAX_PROVISIONING_MESSAGE_BYTES).map((_, i) => i % 251);
    a.send({ kind: 'message', body: largest });
    a.send({ kind: 'message', body: Uint8Array.of(7) });
    const [big, small] = await b.messages(2);
    expect(same(big!, largest)).toBe(true);
    expect([...small!]).toEqual([7]);

    // Another channel has another address.
    const c = await open(client);
    expect(same(await c.create(), channel)).toBe(false);
    await Promise.all([a.close(), b.closed, c.close()]);
  });

  it('refuses a join to an unknown address with 4404', async () => {
    const b = await open(address());
    b.send({ kind: 'join', address: new Uint8Array(16).fill(0x33) });
    expect(await b.closed).toEqual({ code: CloseCode.NO_SUCH_CHANNEL, reason: 'no such channel' });
  });

  it('refuses a third party on a joined channel with 4404, and the channel goes on', async () => {
    const client = address();
    const { a, b, channel } = await pair(client);
    const c = await open(client);
    c.send({ kind: 'join', address: channel });
    expect(await c.closed).toEqual({ code: CloseCode.NO_SUCH_CHANNEL, reason: 'the channel already has two parties' });
    a.send({ kind: 'message', body: text('still here') });
    expect((await b.messages(1)).map(read)).toEqual(['still here']);
    await Promise.all([a.close(), b.closed]);
  });

  it('closes only the socket that sends a malformed frame; another channel and a device connection stay up', async () => {
    const alice = await TestAccount.register(suite.server.url, 'relay_alice');
    const bob = await TestAccount.register(suite.server.url, 'relay_bob');
    const device = await alice.devices[0]!.connect(suite.server.wsUrl);
    const client = address();
    const a = await open(client);
    const channel = await a.create();
    const other = await pair(address());

    const garbage = await open(client);
    garbage.sendRaw(Uint8Array.of(0xff, 0xff, 0xff));
    expect((await garbage.closed).code).toBe(CloseCode.MALFORMED_FRAME);
    const shortAddress = await open(client);
    shortAddress.sendRaw(Uint8Array.of(0x12, 0x11, 0x0a, 0x0f, ...new Uint8Array(15)));
    expect(await shortAddress.closed).toEqual({ code: CloseCode.MALFORMED_FRAME, reason: 'an address is 16 bytes, not 15' });
    const textual = await open(client);
    textual.sendRaw('hello');
    expect((await textual.closed).code).toBe(CloseCode.UNSUPPORTED_DATA);
    const early = await open(client);
    early.send({ kind: 'message', body: text('too soon') });
    expect(await early.closed).toEqual({ code: CloseCode.MALFORMED_FRAME, reason: 'the first frame must be create or join' });

    // The waiting creator was untouched: its channel can still be joined.
    const b = await open(client);
    await b.join(channel);
    await a.next('joined');
    b.send({ kind: 'message', body: text('hi') });
    expect((await a.messages(1)).map(read)).toEqual(['hi']);
    // Once paired, a malformed frame (here a second join) closes its socket, and so the channel: the other party gets 1000.
    b.send({ kind: 'join', address: channel });
    expect(await b.closed).toEqual({ code: CloseCode.MALFORMED_FRAME, reason: 'one create or join per socket' });
    expect(await a.closed).toEqual({ code: CloseCode.NORMAL, reason: 'the other party left' });

    // Everything else is as it was.
    other.a.send({ kind: 'message', body: text('unaffected') });
    expect((await other.b.messages(1)).map(read)).toEqual(['unaffected']);
    expect((await device.request([to(bob, () => text('still connected'))])).kind).toBe('sent');
    await Promise.all([other.a.close(), other.b.closed, device.close()]);
  });

  it('closes a creator that sends a message before joined (4400), and its channel is gone', async () => {
    const client = address();
    const a = await open(client);
    const channel = await a.create();
    a.send({ kind: 'message', body: text('anyone there?') });
    expect(await a.closed).toEqual({ code: CloseCode.MALFORMED_FRAME, reason: 'no message before joined' });
    const b = await open(client);
    b.send({ kind: 'join', address: channel });
    expect((await b.closed).code).toBe(CloseCode.NO_SUCH_CHANNEL);
    const c = await open(client);
    await c.create();
    c.send({ kind: 'create' });
    expect(await c.closed).toEqual({ code: CloseCode.MALFORMED_FRAME, reason: 'one create or join per socket' });
  });

  it('closes the other party with 1000 when one leaves, whichever it is', async () => {
    const first = await pair();
    await first.a.close();
    expect(await first.b.closed).toEqual({ code: CloseCode.NORMAL, reason: 'the other party left' });

    const second = await pair();
    second.b.socket.terminate(); // no close handshake at all
    expect(await second.a.closed).toEqual({ code: CloseCode.NORMAL, reason: 'the other party left' });

    // A creator that leaves before anyone joined takes its channel with it.
    const client = address();
    const a = await open(client);
    const channel = await a.create();
    await a.close();
    const b = await open(client);
    b.send({ kind: 'join', address: channel });
    expect((await b.closed).code).toBe(CloseCode.NO_SUCH_CHANNEL);
  });

  it('closes a frame over MAX_PROVISIONING_FRAME_BYTES with 1009, and a body over the message limit with 4400', async () => {
    const first = await pair();
    first.a.sendRaw(rawMessage(wire.MAX_PROVISIONING_FRAME_BYTES)); // the frame is larger still
    expect((await first.a.closed).code).toBe(CloseCode.TOO_BIG);
    expect((await first.b.closed).code).toBe(CloseCode.NORMAL);

    const second = await pair();
    const frame = rawMessage(wire.MAX_PROVISIONING_MESSAGE_BYTES + 1);
    expect(frame.length).toBeLessThanOrEqual(wire.MAX_PROVISIONING_FRAME_BYTES); // so the decoder, not ws, refuses it
    second.a.sendRaw(frame);
    expect(await second.a.closed).toEqual({
      code: CloseCode.MALFORMED_FRAME,
      reason: `a message body is 1–${wire.MAX_PROVISIONING_MESSAGE_BYTES} bytes, not ${wire.MAX_PROVISIONING_MESSAGE_BYTES + 1}`,
    });
    expect((await second.b.closed).code).toBe(CloseCode.NORMAL);
  });

  it('rate-limits create and join per client address (4429), each address apart', async () => {
    const client = address();
    const creators = [];
    for (let i = 0; i < PROVISIONING_LIMITS.burst; i++) {
      const party = await open(client);
      creators.push({ party, channel: await party.create() });
    }
    const refused = await open(client);
    refused.send({ kind: 'create' });
    const closed = await refused.closed;
    expect(closed.code).toBe(CloseCode.RATE_LIMITED);
    expect(closed.reason).toMatch(/^too many channels from this address; retry in \d+ s$/);
    const joiner = await open(client);
    joiner.send({ kind: 'join', address: creators[0]!.channel });
    expect((await joiner.closed).code).toBe(CloseCode.RATE_LIMITED);

    // Another client address has its own bucket, and may join a channel created from the first.
    const elsewhere = await open(address());
    await elsewhere.join(creators[0]!.channel);
    await creators[0]!.party.next('joined');
    await Promise.all(creators.map(({ party }) => party.close()));
    await elsewhere.closed;
  });
});

describe('provisioning relay on shutdown', () => {
  it('closes both parties of a channel with 1001, and a socket that sent nothing', async () => {
    const storage = await freshStorage('sqlite');
    const server = await spawnServer(storage);
    try {
      const a = await RelayParty.open(server.url);
      const channel = await a.create();
      const b = await RelayParty.open(server.url);
      await b.join(channel);
      const idle = await RelayParty.open(server.url);
      const [exit, ...closes] = await Promise.all([server.stop(), a.closed, b.closed, idle.closed]);
      expect(exit).toBe(0);
      expect(closes).toEqual(Array(3).fill({ code: CloseCode.GOING_AWAY, reason: 'server shutting down' }));
    } finally {
      await server.kill();
      await storage.drop();
    }
  });
});
