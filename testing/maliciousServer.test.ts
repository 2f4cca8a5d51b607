/**
 * The malicious-server proxy against a real server process (SQLite), with
 * real clients: it passes a whole conversation unchanged, and each
 * misbehaviour it offers meets the client reaction that defeats it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { isClientError, type ParleyClient } from '@parley/client';
import { createNodeProvider } from '@parley/crypto/node';
import { decodePreKeySignalMessage, generateIdentityKeyPair, MessageType, type ClientFrame } from '@parley/protocol';

import { Cast, eventually, Profile, texts, waitFor } from './clients.js';
import {
  forgedEnvelope,
  startMaliciousServer,
  type ClientFrameHook,
  type Connection,
  type MaliciousServer,
} from './maliciousServer.js';
import {
  chain,
  deviceListHistory,
  dropEnvelopes,
  duplicateEnvelopes,
  injectDeviceIntoList,
  onlyFor,
  refuseWithMismatch,
  reorder,
  replayEnvelope,
  rewriteEnvelope,
  swapIdentityKey,
  tamperOneTimePreKeys,
} from './misbehaviours.js';
import { freshStorage, spawnServer, type ServerProcess, type Storage } from './server.js';

let storage: Storage;
let server: ServerProcess;
let evil: MaliciousServer;
const profiles: Profile[] = [];
const clients: ParleyClient[] = [];
/** People with more than one device (`cast.linkTo`). */
const cast = new Cast(() => evil.url);

beforeAll(async () => {
  storage = await freshStorage('sqlite');
  server = await spawnServer(storage);
  evil = await startMaliciousServer(server.url);
});

afterEach(() => {
  evil.onHttpResponse(undefined);
  evil.onServerFrame(undefined);
  evil.onClientFrame(undefined);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await cast.close();
  await evil.close();
  await server.stop();
  await storage.drop();
  for (const p of profiles) p.remove();
});

/** A new account on the proxy, online. */
async function person(name: string): Promise<ParleyClient> {
  const profile = new Profile();
  profiles.push(profile);
  const client = await profile.create(evil.url, `${name}_${Math.random().toString(36).slice(2, 8)}`);
  clients.push(client);
  const online = waitFor(client, 'connection', (c) => c.state === 'online', 'connection');
  client.connect();
  await online;
  return client;
}

type Send = Extract<ClientFrame, { kind: 'send' }>;

/** Records the sends that reach the real server (only those of `from`'s devices, if given); put it last in a `chain`. */
function sendLog(from?: string): { readonly hook: ClientFrameHook; readonly sends: Send[]; to(username: string): Send['destinations'][number][] } {
  const sends: Send[] = [];
  return {
    sends,
    hook: (frame, connection) => {
      if (frame.kind === 'send' && (from === undefined || connection.device?.username === from)) sends.push(frame);
    },
    to: (username) => sends.flatMap((s) => s.destinations.filter((d) => d.username === username)),
  };
}

/** The open connection of a client's device, as the proxy knows it. */
function connectionOf(client: ParleyClient): Connection {
  const found = evil.connections().find((c) => c.device?.username === client.username && c.device.deviceId === client.deviceId);
  if (found === undefined) throw new Error(`no connection of ${client.username}.${client.deviceId} through the proxy`);
  return found;
}

/** Waits until the client has processed (acknowledged) every envelope the proxy delivered to it, repeats included. */
async function settled(client: ParleyClient): Promise<void> {
  const connection = connectionOf(client);
  await eventually(`${client.username} acknowledges all it was given`, () => connection.acked.length >= connection.delivered.length);
}

/** Sends `text` and resolves once `to` shows it. */
async function deliver(from: ParleyClient, to: ParleyClient, text: string): Promise<void> {
  const shown = waitFor(to, 'message', (m) => m.body === text, `"${text}"`);
  await from.sendText(to.username, text);
  await shown;
}

describe('passing through', () => {
  it('carries a whole conversation, receipts included, and knows which device each connection is', async () => {
    const paths: string[] = [];
    evil.onHttpResponse(({ method, path }) => {
      paths.push(`${method} ${path}`);
    });
    const alice = await person('alice');
    const bob = await person('bob');
    const read = waitFor(alice, 'status', (m) => m.status === 'read');
    await deliver(alice, bob, 'hello bob');
    await deliver(bob, alice, 'hello alice');
    expect(await bob.markRead(alice.username)).toBe(1);
    await read;

    expect(await texts(alice, bob.username)).toEqual(['hello bob', 'hello alice']);
    expect(await texts(bob, alice.username)).toEqual(['hello bob', 'hello alice']);
    expect(connectionOf(alice).device).toEqual({ username: alice.username, deviceId: 1 });
    expect(connectionOf(bob).delivered.some((e) => e.source === alice.username)).toBe(true);
    expect(paths).toContain(`GET /v1/accounts/${bob.username}`);
    expect(paths.some((p) => p.startsWith(`GET /v1/keys/${bob.username}/`))).toBe(true);
  });
});

describe('device lists', () => {
  it('a device slipped into a served device list is refused: nothing is sent, the ghost never gets a copy', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    const log = sendLog();
    evil.onClientFrame(log.hook);
    evil.onHttpResponse(injectDeviceIntoList(bob.username, { deviceId: 9 }));

    const refused = await alice.sendText(bob.username, 'for bob only').catch((error: unknown) => error);
    expect(isClientError(refused, 'INVALID_DEVICE_LIST')).toBe(true);
    expect(log.to(bob.username)).toEqual([]);

    // Served honestly again, the message goes to Bob's one device.
    evil.onHttpResponse(undefined);
    await deliver(alice, bob, 'now honestly');
    expect(log.to(bob.username).map((d) => d.messages.map((m) => m.deviceId))).toEqual([[1]]);
    expect(await texts(bob, alice.username)).toEqual(['now honestly']);
  });

  it('an older device list served after a newer one is refused, so a removed device never comes back (row 2)', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    const history = deviceListHistory(bob.username);
    evil.onHttpResponse(history.record);
    const laptop = await cast.linkTo(bob);
    await alice.refreshContact(bob.username); // version 2: devices 1 and 2
    await bob.unlinkDevice(laptop.deviceId);
    await laptop.close();
    await alice.refreshContact(bob.username); // version 3: device 1 alone

    evil.onHttpResponse(history.replay(2));
    const refusals = [await alice.refreshContact(bob.username).catch((error: unknown) => error), await bob.devices().catch((error: unknown) => error)];
    for (const refused of refusals) {
      expect(isClientError(refused, 'INVALID_DEVICE_LIST')).toBe(true);
      expect((refused as Error).message).toMatch(/version 2 .* after version 3/);
    }
    // Asked for a copy to the removed device, Alice fetches the list again, meets the old one, and stops.
    const log = sendLog(alice.username);
    evil.onClientFrame(chain(refuseWithMismatch([{ username: bob.username, missing: [laptop.deviceId], extra: [], stale: [] }], { from: alice.username, times: 1 }), log.hook));
    const send = await alice.sendText(bob.username, 'for bob only').catch((error: unknown) => error);
    expect(isClientError(send, 'INVALID_DEVICE_LIST')).toBe(true);
    expect(log.to(bob.username)).toEqual([]);

    evil.onHttpResponse(undefined);
    await deliver(alice, bob, 'to the devices bob has');
    expect(log.to(bob.username).map((d) => d.messages.map((m) => m.deviceId))).toEqual([[1]]);
  });

  it('a device hidden from one person behind an older list is never skipped silently, though the split view itself goes unseen (row 2)', async () => {
    const alice = await person('alice');
    const carol = await person('carol');
    const bob = await person('bob');
    const history = deviceListHistory(bob.username);
    evil.onHttpResponse(history.record);
    await carol.refreshContact(bob.username); // version 1 passes through the proxy
    const laptop = await cast.linkTo(bob); // version 2: devices 1 and 2
    // Alice alone is shown the list from before the laptop: validly signed, and she has seen no newer one.
    evil.onHttpResponse(onlyFor(alice.username, history.replay(1)));
    await alice.refreshContact(bob.username);

    // She encrypts to device 1 alone; the delivery check names the hidden device, which her list does not hold: she stops.
    const fromAlice = sendLog(alice.username);
    const fromCarol = sendLog(carol.username);
    evil.onClientFrame(chain(fromAlice.hook, fromCarol.hook));
    const refused = await alice.sendText(bob.username, 'hi bob').catch((error: unknown) => error);
    expect(isClientError(refused, 'INVALID_DEVICE_LIST')).toBe(true);
    expect((refused as Error).message).toMatch(new RegExp(`device ${laptop.deviceId}\\b`));
    expect(fromAlice.to(bob.username).map((d) => d.messages.map((m) => m.deviceId))).toEqual([[1]]);
    // What the hidden device says to her is dropped, with a notice.
    const notice = waitFor(alice, 'message', (m) => m.kind === 'notice' && m.body.includes(`device ${laptop.deviceId}`), 'a notice on the hidden device');
    await laptop.sendText(alice.username, 'from the laptop');
    expect((await notice).body).toMatch(/was dropped/);
    expect(await texts(alice, bob.username)).not.toContain('from the laptop');

    // Carol, whose version 1 was merely out of date, is sent the current list when the delivery check names the
    // laptop, and reaches both devices. Until then the two views differed, and neither client could tell by itself.
    await deliver(carol, bob, 'hi from carol');
    expect(fromCarol.to(bob.username).map((d) => d.messages.map((m) => m.deviceId))).toEqual([[1], [1, laptop.deviceId]]);
    // Once Alice has seen the current list, the older one is refused.
    evil.onHttpResponse(history.record);
    await alice.refreshContact(bob.username);
    evil.onHttpResponse(onlyFor(alice.username, history.replay(1)));
    expect(isClientError(await alice.refreshContact(bob.username).catch((error: unknown) => error), 'INVALID_DEVICE_LIST')).toBe(true);
  });

  it('a forged DEVICE_MISMATCH asking for a ghost device stops the send', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    const attempts = sendLog();
    evil.onClientFrame(chain(attempts.hook, refuseWithMismatch([{ username: bob.username, missing: [9], extra: [], stale: [] }], { from: alice.username })));

    const refused = await alice.sendText(bob.username, 'hi').catch((error: unknown) => error);
    expect(isClientError(refused, 'INVALID_DEVICE_LIST')).toBe(true);
    expect((refused as Error).message).toMatch(/device 9/);
    // One attempt, to bob's real device only; after the forged refusal, nothing more, and never a copy for device 9.
    expect(attempts.to(bob.username).map((d) => d.messages.map((m) => m.deviceId))).toEqual([[1]]);
  });

  it('a forged DEVICE_MISMATCH naming an account outside the send drops none of its sessions', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    const carol = await person('carol');
    await deliver(alice, carol, 'hi carol');
    const receipt = waitFor(carol, 'status', (m) => m.body === 'hi alice' && m.status === 'delivered');
    await deliver(carol, alice, 'hi alice'); // Alice's session with Carol is now established: her next message is a plain one
    await receipt;
    const attempts = sendLog();
    const log = sendLog();
    evil.onClientFrame(chain(attempts.hook, refuseWithMismatch([{ username: carol.username, missing: [], extra: [1], stale: [1] }], { from: alice.username, times: 1 }), log.hook));

    await deliver(alice, bob, 'hi bob'); // refused once, then sent again
    expect([attempts.to(bob.username).length, log.to(bob.username).length]).toEqual([2, 1]);
    await deliver(alice, carol, 'still there?');
    const toCarol = log.to(carol.username);
    expect(toCarol.at(-1)?.messages.map((m) => m.type)).toEqual([MessageType.Whisper]);
  });
});

describe('identity keys', () => {
  const provider = createNodeProvider();

  it('a swapped key the server signs a device list with is an identity change, and blocks sending to a verified contact', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    await deliver(alice, bob, 'hi');
    await alice.verify(bob.username, (await bob.safetyNumber(alice.username)).digits);
    const log = sendLog();
    evil.onClientFrame(log.hook);
    evil.onHttpResponse(swapIdentityKey(bob.username, await generateIdentityKeyPair(provider)));

    const warned = waitFor(alice, 'identityChange', (c) => c.username === bob.username);
    await alice.refreshContact(bob.username);
    expect(await warned).toEqual({ username: bob.username, wasVerified: true });
    expect((await texts(alice, bob.username)).at(-1)).toMatch(/^!.*safety number changed.*sending is paused/);
    const refused = await alice.sendText(bob.username, 'are you still you?').catch((error: unknown) => error);
    expect(isClientError(refused, 'IDENTITY_CHANGED')).toBe(true);
    expect(log.to(bob.username)).toEqual([]);
  });

  it('a swapped key in a bundle answer, met when a session starts, stops the send to a verified contact', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    await alice.refreshContact(bob.username); // a contact, no session yet
    await alice.verify(bob.username, (await bob.safetyNumber(alice.username)).digits);
    const log = sendLog();
    evil.onClientFrame(log.hook);
    evil.onHttpResponse(swapIdentityKey(bob.username, await generateIdentityKeyPair(provider)));

    const refused = await alice.sendText(bob.username, 'hello?').catch((error: unknown) => error);
    expect(isClientError(refused, 'IDENTITY_CHANGED')).toBe(true);
    expect((await texts(alice, bob.username)).at(-1)).toMatch(/^!.*safety number changed.*sending is paused/);
    expect(log.to(bob.username)).toEqual([]);
  });

  it('a swapped key the server cannot sign with makes the device list invalid', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    evil.onHttpResponse(swapIdentityKey(bob.username, (await generateIdentityKeyPair(provider)).publicKey));
    const refused = await alice.sendText(bob.username, 'hi').catch((error: unknown) => error);
    expect(isClientError(refused, 'INVALID_DEVICE_LIST')).toBe(true);
  });
});

describe('sending', () => {
  it('a send the server could not store (UNAVAILABLE) goes again after a pause, and is shown once', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    await deliver(alice, bob, 'hello');
    let refused = 0;
    evil.onClientFrame((frame, connection) => {
      if (frame.kind !== 'send' || connection.device?.username !== alice.username || refused === 2) return undefined;
      refused++;
      connection.toClient({ kind: 'refused', requestId: frame.requestId, code: 'UNAVAILABLE', message: 'the server could not store the send; try again', mismatches: [] });
      return [];
    });
    const sent = await alice.sendText(bob.username, 'stored at the third try');
    expect(refused).toBe(2);
    expect(sent.status).toBe('sent');
    await eventually('bob shows it', async () => (await texts(bob, alice.username)).includes('stored at the third try'));
    expect(await texts(bob, alice.username)).toEqual(['hello', 'stored at the third try']);
  });
});

describe('one-time prekeys', () => {
  it('a one-time prekey served twice opens one session start, and the other sender gets through by resend, shown once (row 11)', async () => {
    const bob = await person('bob');
    const alice = await person('alice');
    const carol = await person('carol');
    const [fromAlice, fromCarol] = [sendLog(alice.username), sendLog(carol.username)];
    evil.onHttpResponse(tamperOneTimePreKeys(bob.username, 'reuse'));
    evil.onClientFrame(chain(fromAlice.hook, fromCarol.hook));
    await deliver(alice, bob, 'from alice');
    // Carol's session start names the prekey Alice's used up: Bob cannot open it, and asks Carol for it again.
    await deliver(carol, bob, 'from carol');
    const preKeyIdOf = (log: typeof fromAlice) => decodePreKeySignalMessage(log.to(bob.username)[0]!.messages[0]!.body).preKeyId;
    expect(preKeyIdOf(fromCarol)).toBe(preKeyIdOf(fromAlice));
    expect(preKeyIdOf(fromAlice)).toBeDefined();
    await eventually('the failure recovered', async () => (await bob.undecryptableCount(0)) === 0);
    expect(await texts(bob, alice.username)).toEqual(['from alice']);
    expect(await texts(bob, carol.username)).toEqual(['from carol']);
  });

  it('one-time prekeys withheld, sessions start on the signed and Kyber prekeys alone (row 11)', async () => {
    const bob = await person('bob');
    const alice = await person('alice');
    const fetched = sendLog();
    evil.onHttpResponse(tamperOneTimePreKeys(bob.username, 'withhold'));
    evil.onClientFrame(fetched.hook);
    await deliver(alice, bob, 'no one-time key');
    await deliver(bob, alice, 'answered');
    const [start] = fetched.to(bob.username).flatMap((d) => d.messages);
    expect(start!.type).toBe(MessageType.PreKey);
    expect(decodePreKeySignalMessage(start!.body).preKeyId).toBeUndefined();
    expect(await bob.undecryptableCount(0)).toBe(0);
  });
});

describe('envelopes', () => {
  it('a duplicated envelope is shown once', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    evil.onServerFrame(duplicateEnvelopes((e) => e.source === alice.username));
    await deliver(alice, bob, 'one');
    await deliver(alice, bob, 'two');
    await settled(bob);
    const fromAlice = connectionOf(bob).delivered.filter((e) => e.source === alice.username);
    expect(fromAlice).toHaveLength(4);
    expect(await texts(bob, alice.username)).toEqual(['one', 'two']);
    expect(await bob.undecryptableCount(0)).toBe(0);
  });

  it('a replayed envelope under a fresh id is shown once', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    await deliver(alice, bob, 'first');
    const receipt = waitFor(bob, 'status', (m) => m.body === 'reply' && m.status === 'delivered');
    await deliver(bob, alice, 'reply'); // from here on Alice's messages are plain ones, not session starts
    await receipt;
    evil.onServerFrame(replayEnvelope((e) => e.source === alice.username));
    await deliver(alice, bob, 'once only');
    await deliver(alice, bob, 'after');
    await settled(bob);
    const bodies = connectionOf(bob).delivered.filter((e) => e.source === alice.username).map((e) => Buffer.from(e.body).toString('base64'));
    expect(new Set(bodies).size).toBe(bodies.length - 1);
    expect(await texts(bob, alice.username)).toEqual(['first', 'reply', 'once only', 'after']);
    // A reused counter may be a sender restored from a snapshot, so Bob asks for a resend; the replay's resend is shown once.
    await eventually('the replay, asked for again, leaves nothing undecryptable', async () => (await bob.undecryptableCount(0)) === 0);
    expect(await texts(bob, alice.username)).toEqual(['first', 'reply', 'once only', 'after']);
  });

  it('a replayed session start under a fresh id is shown once', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    evil.onServerFrame(replayEnvelope((e) => e.source === alice.username));
    await deliver(alice, bob, 'first');
    await deliver(alice, bob, 'second');
    await settled(bob);
    const bodies = connectionOf(bob).delivered.filter((e) => e.source === alice.username).map((e) => Buffer.from(e.body).toString('base64'));
    expect(bodies.filter((b) => b === bodies[0])).toHaveLength(2); // the session start, and its replay
    expect(await texts(bob, alice.username)).toEqual(['first', 'second']);
    await eventually('the replay, asked for again, leaves nothing undecryptable', async () => (await bob.undecryptableCount(0)) === 0);
    expect(await texts(bob, alice.username)).toEqual(['first', 'second']);
  });

  it('a dropped envelope is skipped over, and shown in its place once the server pushes it again on a new connection', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    let dropped = 0;
    evil.onServerFrame(dropEnvelopes((e) => e.source === alice.username && dropped++ === 0));
    await alice.sendText(bob.username, 'lost');
    await deliver(alice, bob, 'kept');
    expect(await texts(bob, alice.username)).toEqual(['kept']);

    evil.onServerFrame(undefined);
    const redelivered = waitFor(bob, 'message', (m) => m.body === 'lost', '"lost" again');
    connectionOf(bob).close(); // bob reconnects; the server pushes what bob never acknowledged
    await redelivered;
    expect(await texts(bob, alice.username)).toEqual(['lost', 'kept']);
    expect(await bob.undecryptableCount(0)).toBe(0);
  });

  it('envelopes delivered out of order are all shown, in the order they were written', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    evil.onServerFrame(reorder(2, (e) => e.source === alice.username));
    const both = waitFor(bob, 'message', (m) => m.body === 'first', '"first"');
    await alice.sendText(bob.username, 'first');
    await alice.sendText(bob.username, 'second');
    await both;
    await settled(bob);
    const order = connectionOf(bob).delivered.filter((e) => e.source === alice.username).map((e) => e.id);
    expect(order).toEqual([...order].sort((a, b) => b - a));
    expect(await texts(bob, alice.username)).toEqual(['first', 'second']);
    expect(await bob.undecryptableCount(0)).toBe(0);
  });

  it('two texts the server stored at one time, both undecryptable on arrival, are both resent and shown once (rows 19, 26)', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    await deliver(alice, bob, 'hello');
    const receipt = waitFor(bob, 'status', (m) => m.body === 'hi' && m.status === 'delivered');
    await deliver(bob, alice, 'hi');
    await receipt; // from here on, Alice sends Bob only the two texts
    // One group commit gives every send in it one server time; here, every send of Alice's gets the same one, and
    // the server spoils the first delivery of each, so Bob asks Alice to resend what she sent at that time.
    const storedAt = Date.now();
    const spoiled = new Set<number>();
    evil.onServerFrame((frame, connection) => {
      if (frame.kind === 'sent' && connection.device?.username === alice.username) return [{ ...frame, timestamp: storedAt }];
      if (frame.kind !== 'envelope' || frame.envelope.source !== alice.username || spoiled.size === 2 || frame.envelope.timestamp === storedAt) return undefined;
      spoiled.add(frame.envelope.id);
      const body = frame.envelope.body.slice();
      body[body.length - 1]! ^= 1;
      return [{ kind: 'envelope', envelope: { ...frame.envelope, timestamp: storedAt, body } }];
    });
    const shown = Promise.all(['one', 'two'].map((text) => waitFor(bob, 'message', (m) => m.body === text, `"${text}", resent`)));
    await alice.sendText(bob.username, 'one');
    await alice.sendText(bob.username, 'two');
    await shown;
    expect(spoiled.size).toBe(2);
    await eventually('both failures recovered', async () => (await bob.undecryptableCount(0)) === 0);
    expect(await texts(bob, alice.username)).toEqual(['hello', 'hi', 'one', 'two']);
  });

  it('an envelope claiming a device its sender never listed is dropped with a notice, forged or rewritten', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    const notice = (device: number) => waitFor(bob, 'message', (m) => m.kind === 'notice' && m.body.includes(`device ${device}`), `notice on device ${device}`);

    const forged = notice(9);
    expect(evil.inject(bob.username, forgedEnvelope({ source: alice.username, sourceDevice: 9, type: MessageType.Whisper, body: new Uint8Array(40) }))).toBe(1);
    expect((await forged).body).toMatch(/was dropped/);

    evil.onServerFrame(rewriteEnvelope((e) => e.source === alice.username, (e) => ({ ...e, sourceDevice: 7 })));
    const rewritten = notice(7);
    await alice.sendText(bob.username, 'from device 1, really');
    expect((await rewritten).body).toMatch(/was dropped/);
    await settled(bob);
    expect((await texts(bob, alice.username)).filter((t) => !t.startsWith('!'))).toEqual([]);
  });
});
