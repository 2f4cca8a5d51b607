/**
 * The SDK end to end: real clients (SQLite profiles) and a real server
 * process over real HTTP and WebSockets. Each test tells a story a user could
 * live through and checks what every device shows.
 */
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import SQLite from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isClientError, ParleyClient, type KeyValueStore } from '@parley/client';
import { PROFILE_DATABASE } from '@parley/client/node';

import { eventually, Profile, texts, waitFor } from '../../../testing/clients.js';
import { contextOf, MAX_ENVELOPE_ATTEMPTS } from './client.js';
import { http, TestAccount } from '../../../testing/device.js';
import { freshStorage, spawnServer, type ServerProcess, type Storage } from '../../../testing/server.js';

let storage: Storage;
let server: ServerProcess;
const profiles: Profile[] = [];
const clients: ParleyClient[] = [];

const unique = (name: string) => `${name}_${Math.random().toString(36).slice(2, 8)}`;

async function person(name: string): Promise<{ client: ParleyClient; profile: Profile }> {
  const profile = new Profile();
  profiles.push(profile);
  const client = await profile.create(server.url, unique(name));
  clients.push(client);
  client.connect();
  await waitFor(client, 'connection', (c) => c.state === 'online', 'connection');
  return { client, profile };
}

beforeAll(async () => {
  storage = await freshStorage('sqlite');
  server = await spawnServer(storage);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await server.stop();
  await storage.drop();
  for (const p of profiles) p.remove();
});

describe('two people, one device each', () => {
  it('a text arrives once, and its delivery and read receipts come back', async () => {
    const { client: alice } = await person('alice');
    const { client: bob } = await person('bob');
    const incoming = bob.events.iterate('message');
    const delivered = waitFor(alice, 'status', (m) => m.status === 'delivered');
    const sent = await alice.sendText(bob.username, 'hello bob');
    expect(sent.status).toBe('sent');
    const next = await incoming.next();
    await incoming.return!();
    if (next.done === true) throw new Error('the message iterator ended');
    const received = next.value;
    expect(received).toMatchObject({ conversation: alice.username, author: alice.username, direction: 'incoming', kind: 'text', body: 'hello bob' });
    await delivered;
    const read = waitFor(alice, 'status', (m) => m.status === 'read');
    expect(await bob.markRead(alice.username)).toBe(1);
    await read;
    expect(await texts(bob, alice.username)).toEqual(['hello bob']);
    expect(await texts(alice, bob.username)).toEqual(['hello bob']);
    expect((await alice.conversation(bob.username))[0]!.status).toBe('read');
  });

  it('a profile is open in one process at a time: a second opener is told so, and may open it once the first closes', async () => {
    const { client, profile } = await person('erin');
    const second = await profile.open().catch((error: unknown) => error);
    expect(isClientError(second, 'PROFILE_IN_USE')).toBe(true);
    await client.close();
    // A closed client says so, whatever is asked of it.
    expect(isClientError(await client.conversations().catch((error: unknown) => error), 'CLOSED')).toBe(true);
    expect(isClientError(await client.sendText(client.username, 'note').catch((error: unknown) => error), 'CLOSED')).toBe(true);
    const reopened = await profile.open();
    clients.push(reopened);
    expect(reopened.username).toBe(client.username);
  });

  it('a device offline drains its mailbox in order when it comes back, from its stored profile', async () => {
    const { client: alice } = await person('alice');
    const bobParts = await person('bob');
    await bobParts.client.close();
    for (const text of ['one', 'two', 'three']) await alice.sendText(bobParts.client.username, text);
    const bob = await bobParts.profile.open();
    clients.push(bob);
    expect(await bob.sync()).toBeGreaterThanOrEqual(3);
    expect(await texts(bob, alice.username)).toEqual(['one', 'two', 'three']);
  });

  it(`SECURITY-TESTS row 22: an envelope that fails every time is dropped after ${MAX_ENVELOPE_ATTEMPTS} attempts with a notice, and the rest of the mailbox gets through`, async () => {
    const { client: alice } = await person('alice');
    const { client: bob } = await person('bob');
    // Bob's disk refuses to store one particular message, every time (a bug, a corrupt page: it never heals).
    const store = contextOf(bob).store as { write: KeyValueStore['write'] };
    const write = store.write.bind(store);
    store.write = async (writes) => {
      if (writes.some((w) => w.ns === 'message' && w.value !== undefined && new TextDecoder().decode(w.value).includes('poison pill'))) {
        throw new Error('the disk refused the write');
      }
      return write(writes);
    };
    const warnings: string[] = [];
    bob.events.on('warning', ({ message }) => warnings.push(message));

    await alice.sendText(bob.username, 'a poison pill');
    await alice.sendText(bob.username, 'after the pill');
    await eventually('the message behind the poison arrives', async () => (await texts(bob, alice.username)).includes('after the pill'));
    // The notice is dated when the envelope was dropped, after the message behind it had been written.
    expect(await texts(bob, alice.username)).toEqual(['after the pill', `!A message from ${alice.username} could not be processed and was dropped.`]);
    expect(warnings.filter((w) => w.endsWith('retrying'))).toHaveLength(MAX_ENVELOPE_ATTEMPTS - 1);
    expect(warnings.at(-1)).toMatch(new RegExp(`dropped an envelope from ${alice.username} after ${MAX_ENVELOPE_ATTEMPTS} attempts: the disk refused the write`));
  });

  it('a changed identity key puts a warning in the conversation and blocks sending to a verified contact', async () => {
    const { client: alice } = await person('alice');
    const { client: bob, profile: bobProfile } = await person('bob');
    await alice.sendText(bob.username, 'hi');
    await alice.verify(bob.username, (await bob.safetyNumber(alice.username)).digits);
    expect((await alice.safetyNumber(bob.username)).verified).toBe(true);

    // Bob's identity is replaced server-side: simulate with a new account under a key the server swapped in.
    // The server cannot forge Bob's device list signature, so the only swap it can make is the whole
    // account (new key, new list): exactly what a re-registration after a lost phone looks like.
    await bob.close();
    bobProfile.remove();
    await swapIdentity(bob.username);

    const warned = waitFor(alice, 'identityChange', (c) => c.username === bob.username);
    await expect(alice.refreshContact(bob.username)).resolves.toBeUndefined();
    expect(await warned).toEqual({ username: bob.username, wasVerified: true });
    const conversation = await texts(alice, bob.username);
    expect(conversation.at(-1)).toMatch(/^!.*safety number changed.*sending is paused/);
    const refused = await alice.sendText(bob.username, 'are you still you?').catch((error: unknown) => error);
    expect(isClientError(refused, 'IDENTITY_CHANGED')).toBe(true);
    const unsent = (await alice.conversation(bob.username)).find((m) => m.body === 'are you still you?');
    expect(unsent?.status).toBe('failed'); // shown as not sent, never stuck at "sending"
    await alice.verify(bob.username);
    expect((await alice.safetyNumber(bob.username)).verified).toBe(true);
  });

  it('a key change sets keyChanged (and blocked, if verified); verifying clears both, dismissing clears keyChanged only', async () => {
    const { client: alice } = await person('alice');
    const { client: bob } = await person('bob');
    expect(await alice.contact(bob.username)).toBeUndefined(); // the local store only: nothing fetched
    await alice.sendText(bob.username, 'hi');
    expect(await alice.contact(bob.username)).toEqual({ username: bob.username, verified: false, blocked: false, keyChanged: false });
    await alice.verify(bob.username);
    await bob.close();

    await swapIdentity(bob.username);
    await alice.refreshContact(bob.username);
    expect(await alice.contact(bob.username.toUpperCase())).toEqual({ username: bob.username, verified: false, blocked: true, keyChanged: true });
    await alice.verify(bob.username);
    expect(await alice.contact(bob.username)).toEqual({ username: bob.username, verified: true, blocked: false, keyChanged: false });

    await swapIdentity(bob.username);
    await alice.refreshContact(bob.username);
    expect(await alice.contact(bob.username)).toMatchObject({ blocked: true, keyChanged: true });
    await alice.dismissKeyChange(bob.username);
    expect(await alice.contact(bob.username)).toEqual({ username: bob.username, verified: false, blocked: true, keyChanged: false });
  });

  it('conversations count unread incoming texts, for people and groups; markRead and markGroupRead clear them', async () => {
    const { client: alice } = await person('alice');
    const { client: bob } = await person('bob');
    await alice.sendText(bob.username, 'one');
    await alice.sendText(bob.username, 'two');
    await eventually('bob has both texts', async () => (await texts(bob, alice.username)).length === 2);
    expect((await bob.conversations()).map((c) => [c.username, c.last.body, c.unread])).toEqual([[alice.username, 'two', 2]]);
    expect((await alice.conversations()).map((c) => c.unread)).toEqual([0]); // outgoing texts are never unread

    const group = await alice.createGroup('Lunch', [bob.username]);
    await alice.sendGroupText(group.id, 'noon?');
    await eventually('bob has the group text', async () => (await bob.groupConversation(group.id)).some((m) => m.body === 'noon?'));
    const summaries = await bob.conversations();
    expect(summaries.find((c) => c.username === group.conversation)?.unread).toBe(1); // the roster notice is not counted
    expect(summaries.find((c) => c.username === alice.username)?.unread).toBe(2);

    expect(await bob.markRead(alice.username)).toBe(2);
    expect(await bob.markGroupRead(group.id)).toBe(1);
    expect(await bob.markGroupRead(group.id)).toBe(0);
    expect((await bob.conversations()).map((c) => c.unread)).toEqual([0, 0]);
    expect((await bob.groupConversation(group.id)).find((m) => m.body === 'noon?')?.status).toBe('read');
  });
});

describe('keys', () => {
  it('one-time prekeys are refilled when they run low, and the signed prekey rotates weekly', async () => {
    let now = Date.now();
    const profile = new Profile();
    profiles.push(profile);
    const platform = { ...profile.platform(), now: () => now };
    const carol = await ParleyClient.create(platform, server.url, unique('carol'));
    clients.push(carol);
    expect(await carol.keyStatus()).toMatchObject({ preKeys: 100, kyberPreKeys: 100, signedPreKeyId: 1 });

    // Others start sessions with carol until fewer than the low-water mark are left.
    const taken = await takeOneTimeKeys(carol.username, 85);
    expect(taken).toBe(85);
    expect(await carol.keyStatus()).toMatchObject({ preKeys: 15, kyberPreKeys: 15 });
    await carol.sync();
    await eventually('carol refilled', async () => (await carol.keyStatus()).preKeys === 115);
    expect((await carol.keyStatus()).kyberPreKeys).toBe(115);

    // A week later the signed prekey and the last-resort key are replaced.
    now += 8 * 24 * 3600 * 1000;
    await carol.close();
    const later = await ParleyClient.open({ ...profile.platform(), now: () => now });
    clients.push(later);
    await later.sync();
    await eventually('carol rotated', async () => (await later.keyStatus()).signedPreKeyId === 2);
    expect((await later.keyStatus()).signedPreKeyAt).toBe(now);

    // Two more weeks: the two previous keys of each kind stay for late messages, the oldest goes.
    let current = later;
    for (const id of [3, 4]) {
      now += 8 * 24 * 3600 * 1000;
      await current.close();
      current = await ParleyClient.open({ ...profile.platform(), now: () => now });
      clients.push(current);
      await current.sync();
      await eventually(`carol rotated to ${id}`, async () => (await current.keyStatus()).signedPreKeyId === id);
    }
    await current.close();
    const db = new SQLite(join(profile.dir, PROFILE_DATABASE), { readonly: true });
    const keys = (ns: string) => (db.prepare('select key from kv where ns = ? order by key').all(ns) as { key: string }[]).map((r) => Number(r.key));
    expect(keys('signed')).toEqual([2, 3, 4]);
    // Last-resort ids count down from the top of the id space: the fourth is 0xfffffc, and the first (0xffffff) is gone.
    expect(keys('kyber').filter((id) => id > 0xff_0000).sort((a, b) => a - b)).toEqual([0xff_fffc, 0xff_fffd, 0xff_fffe]);
    db.close();
  });
});

/**
 * Fetches `count` bundles of `username`'s device 1 (each takes a one-time key
 * of each kind), from as many fresh accounts as the per-target rate limit needs.
 */
async function takeOneTimeKeys(username: string, count: number): Promise<number> {
  let taken = 0;
  while (taken < count) {
    const requester = (await TestAccount.register(server.url, unique('taker'))).devices[0]!;
    const token = await requester.login();
    for (let i = 0; i < 10 && taken < count; i++) {
      const answer = await http(server.url, 'GET', `/v1/keys/${username}/1`, { token });
      if (answer.status !== 200) throw new Error(`bundle fetch answered ${answer.status}`);
      taken++;
    }
  }
  return taken;
}

describe('recovering from lost state', () => {
  it('a device restored from an old snapshot recovers through decryption-error and resend, ending with nothing undecryptable', async () => {
    const { client: alice } = await person('alice');
    const bobParts = await person('bob');
    let bob = bobParts.client;
    const [a, b] = [alice.username, bob.username];
    await alice.sendText(b, 'one');
    await eventually('bob has one', async () => (await texts(bob, a)).includes('one'));
    await bob.sendText(a, 'two');
    await eventually('alice has two', async () => (await texts(alice, b)).includes('two'));

    await bob.close();
    const snapshot = `${bobParts.profile.dir}.snapshot`;
    cpSync(bobParts.profile.dir, snapshot, { recursive: true });

    bob = await bobParts.profile.open();
    clients.push(bob);
    await bob.sync();
    // Both ratchets turn past the snapshot.
    await bob.sendText(a, 'three');
    await eventually('alice has three', async () => (await texts(alice, b)).includes('three'));
    await alice.sendText(b, 'four');
    await eventually('bob has four', async () => (await texts(bob, a)).includes('four'));
    await bob.close();

    rmSync(bobParts.profile.dir, { recursive: true });
    cpSync(snapshot, bobParts.profile.dir, { recursive: true });
    rmSync(snapshot, { recursive: true });
    bob = await bobParts.profile.open();
    clients.push(bob);
    await bob.sync();

    const failure = waitFor(bob, 'warning', (w) => w.message.includes('could not be decrypted'), 'decryption failure');
    await alice.sendText(b, 'after the restore');
    await failure;
    await eventually('the resent message arrives', async () => (await texts(bob, a)).includes('after the restore'));
    await eventually('nothing stays undecryptable', async () => (await bob.undecryptableCount(0)) === 0);
    expect((await texts(bob, a)).filter((t) => t === 'after the restore')).toHaveLength(1);

    // And the conversation goes on both ways in the new sessions.
    await bob.sendText(a, 'back in business');
    await eventually('alice has it', async () => (await texts(alice, b)).includes('back in business'));
    expect(await alice.undecryptableCount(0)).toBe(0);
  });
});

describe('a server that lies', () => {
  it('slips a ghost device into an account: it is never encrypted to, and the send stops with the reason', async () => {
    const { client: alice } = await person('alice');
    const { client: bob } = await person('bob');
    await alice.sendText(bob.username, 'before');
    await eventually('bob has the first message', async () => (await texts(bob, alice.username)).includes('before'));

    await editServerDatabase((db) => {
      const { id } = db.prepare('select id from accounts where username = ?').get(bob.username) as { id: number };
      const { auth_key } = db.prepare('select auth_key from devices where account_id = ?').get(id) as { auth_key: Buffer };
      db.prepare('insert into devices (account_id, device_id, registration_id, auth_key) values (?, 7, 4242, ?)').run(id, auth_key);
    });

    const refused = await alice.sendText(bob.username, 'for bob only').catch((error: unknown) => error);
    expect(isClientError(refused, 'INVALID_DEVICE_LIST')).toBe(true);
    expect((refused as Error).message).toMatch(/device 7, which .* signed device list does not hold; nothing was sent/);
    await editServerDatabase((db) => {
      const copies = db.prepare('select count(*) as n from envelopes where device_id = 7').get() as { n: number };
      expect(copies.n).toBe(0);
    });
    expect(await texts(bob, alice.username)).toEqual(['before']);
  });
});

/** Runs `edit` on the stopped server's SQLite file, then restarts the server on the same address. */
async function editServerDatabase(edit: (db: SQLite.Database) => void): Promise<void> {
  await server.stop();
  const db = new SQLite(`${storage.args[1]!}/parley.sqlite`);
  try {
    edit(db);
  } finally {
    db.close();
  }
  server = await spawnServer(storage, ['--port', new URL(server.url).port]); // the clients know this address
}

/** A person with two devices: the first creates the account, the second links through the first's link code. */
async function twoDevices(name: string): Promise<[ParleyClient, ParleyClient]> {
  const { client: first } = await person(name);
  const second = await linkTo(first);
  return [first, second];
}

async function linkTo(existing: ParleyClient): Promise<ParleyClient> {
  const pending = await existing.startLink();
  const profile = new Profile();
  profiles.push(profile);
  const linked = await ParleyClient.link(profile.platform(), pending.code);
  clients.push(linked);
  expect(await pending.done).toEqual({ deviceId: linked.deviceId });
  linked.connect();
  await waitFor(linked, 'connection', (c) => c.state === 'online', 'connection');
  return linked;
}

describe('two people, two devices each', () => {
  it('messages reach every device of both people, with sync transcripts; a linked device gets history; an unlinked one gets nothing', async () => {
    const [alice1, alice2] = await twoDevices('alice');
    const [bob1, bob2] = await twoDevices('bob');
    const [alice, bob] = [alice1.username, bob1.username];
    expect(alice2.username).toBe(alice);
    expect((await alice1.devices()).map((d) => d.deviceId)).toEqual([1, 2]);

    await alice1.sendText(bob, 'hi bob');
    await bob2.sendText(alice, 'hi alice, from my laptop');
    for (const device of [alice1, alice2]) {
      await eventually(`${alice}.${device.deviceId} shows both messages`, async () => (await texts(device, bob)).length === 2);
      expect(await texts(device, bob)).toEqual(['hi bob', 'hi alice, from my laptop']);
    }
    for (const device of [bob1, bob2]) {
      await eventually(`${bob}.${device.deviceId} shows both messages`, async () => (await texts(device, alice)).length === 2);
      expect(await texts(device, alice)).toEqual(['hi bob', 'hi alice, from my laptop']);
    }
    expect((await alice2.conversation(bob))[0]).toMatchObject({ direction: 'outgoing', author: alice, authorDevice: 1 });

    // A third device, linked mid-conversation, has the history and what follows.
    const alice3 = await linkTo(alice1);
    expect(await texts(alice3, bob)).toEqual(['hi bob', 'hi alice, from my laptop']);
    await bob1.sendText(alice, 'welcome, new device');
    await eventually('alice.3 gets the new message', async () => (await texts(alice3, bob)).includes('welcome, new device'));

    // Unlinking device 2: it is told so, and gets nothing after.
    const closed = waitFor(alice2, 'connection', (c) => c.state === 'closed', 'closed connection');
    await alice1.unlinkDevice(alice2.deviceId);
    await closed;
    expect((await alice1.devices()).map((d) => d.deviceId)).toEqual([1, 3]);
    await bob2.sendText(alice, 'after the unlink');
    for (const device of [alice1, alice3]) {
      await eventually(`${alice}.${device.deviceId} gets the message`, async () => (await texts(device, bob)).includes('after the unlink'));
    }
    expect(await texts(alice2, bob)).not.toContain('after the unlink');
    expect(await alice1.undecryptableCount()).toBe(0);
  });

  it('the server killed and restarted mid-conversation loses nothing and shows nothing twice', async () => {
    const [alice1, alice2] = await twoDevices('alice');
    const [bob1, bob2] = await twoDevices('bob');
    const sent = Array.from({ length: 12 }, (_, i) => `message ${i + 1}`);
    const sending = (async () => {
      for (const text of sent) await alice1.sendText(bob1.username, text);
    })();
    await eventually('some messages arrive before the kill', async () => (await texts(bob1, alice1.username)).length >= 3);
    await server.kill();
    server = await spawnServer(storage, ['--port', new URL(server.url).port]);
    await sending;
    for (const device of [bob1, bob2, alice2]) {
      await eventually(`${device.username}.${device.deviceId} has all ${sent.length}`, async () => (await texts(device, device === alice2 ? bob1.username : alice1.username)).length >= sent.length);
      expect(await texts(device, device === alice2 ? bob1.username : alice1.username)).toEqual(sent);
    }
  });
});

/** Stands in for a server that swaps an account's identity key: re-registers the username under a new key. */
async function swapIdentity(username: string): Promise<void> {
  await editServerDatabase((db) => {
    db.prepare('delete from accounts where username = ?').run(username);
  });
  const impostor = new Profile();
  profiles.push(impostor);
  const client = await impostor.create(server.url, username);
  await client.close();
}
