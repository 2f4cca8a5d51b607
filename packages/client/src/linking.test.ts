/**
 * Linking Signal's way round, end to end: the new device shows a join code,
 * a device already in the account approves it. Real clients (SQLite
 * profiles) and a real server process. The other way round (the existing
 * device shows a link code) is told in client.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isClientError, ParleyClient } from '@parley/client';
import { createNodeProvider } from '@parley/crypto/node';

import { Cast, eventually, Profile, texts, waitFor } from '../../../testing/clients.js';
import { freshStorage, spawnServer, type ServerProcess, type Storage } from '../../../testing/server.js';
import { open, seal, type Direction } from './linking.js';

let storage: Storage;
let server: ServerProcess;
const cast = new Cast(() => server.url);

/** A fresh profile for a new device, removed with the cast. */
function newProfile(): Profile {
  const profile = new Profile();
  cast.profiles.push(profile);
  return profile;
}

beforeAll(async () => {
  storage = await freshStorage('sqlite');
  server = await spawnServer(storage);
});

afterAll(async () => {
  await cast.close();
  await server.stop();
  await storage.drop();
});

describe('a new device asks to join, a device of the account approves', () => {
  it('the new device gets the account and the history window, then sends and receives', async () => {
    const alice = await cast.person('alice');
    const bob = await cast.person('bob');
    for (const text of ['too old for the window', 'within the window']) await bob.sendText(alice.username, text);
    await eventually('alice has both messages', async () => (await texts(alice, bob.username)).length === 2);

    const request = await ParleyClient.requestLink(newProfile().platform(), server.url);
    expect(request.code).toMatch(/^parley:\/\/join\?v=1&server=/);
    const listed = waitFor(alice, 'devices', (d) => d.deviceIds.length === 2, 'the new device list');
    const approved = await alice.approveLink(request.code, { maxMessages: 1 });
    const laptop = await request.done;
    cast.clients.push(laptop);
    expect(approved).toEqual({ deviceId: laptop.deviceId });
    expect(laptop.username).toBe(alice.username);
    expect(laptop.deviceId).toBe(2);
    expect((await listed).deviceIds).toEqual([1, 2]);
    expect(await texts(laptop, bob.username)).toEqual(['within the window']);

    const online = waitFor(laptop, 'connection', (c) => c.state === 'online', 'connection');
    laptop.connect();
    await online;
    await laptop.sendText(bob.username, 'hello from the new laptop');
    await eventually('bob gets the new device\'s message', async () => (await texts(bob, alice.username)).includes('hello from the new laptop'));
    await eventually('alice.1 gets its transcript', async () => (await texts(alice, bob.username)).includes('hello from the new laptop'));
    await bob.sendText(alice.username, 'welcome');
    await eventually('the new device gets bob\'s reply', async () => (await texts(laptop, bob.username)).includes('welcome'));
  });

  it('a code entered where the other kind belongs is refused, saying which device it belongs on', async () => {
    const alice = await cast.person('alice');

    const request = await ParleyClient.requestLink(newProfile().platform(), server.url);
    const requested = request.done.catch((error: unknown) => error);
    const asLink = await ParleyClient.link(newProfile().platform(), request.code).catch((error: unknown) => error);
    expect(isClientError(asLink, 'INVALID_ARGUMENT')).toBe(true);
    expect((asLink as Error).message).toMatch(/shown by a new device: approve it from a device already linked/);
    request.cancel();
    expect(isClientError(await requested, 'NETWORK')).toBe(true);

    const pending = await alice.startLink();
    const offered = pending.done.catch((error: unknown) => error);
    const asJoin = await alice.approveLink(pending.code).catch((error: unknown) => error);
    expect(isClientError(asJoin, 'INVALID_ARGUMENT')).toBe(true);
    expect((asJoin as Error).message).toMatch(/shown by a device already linked: enter it on the new device/);
    pending.cancel();
    expect(isClientError(await offered, 'NETWORK')).toBe(true);
    expect((await alice.devices()).map((d) => d.deviceId)).toEqual([1]);
  });

  it('a profile that holds an account does not ask to join another', async () => {
    const alice = await cast.person('alice');
    await alice.close();
    const refused = await ParleyClient.requestLink(cast.profiles.at(-1)!.platform(), server.url).catch((error: unknown) => error);
    expect(isClientError(refused, 'ACCOUNT_EXISTS')).toBe(true);
  });
});

describe('the linking channel', () => {
  const provider = createNodeProvider();

  it('a message sealed for one direction never opens in the other, nor on another channel (row 8)', async () => {
    const key = provider.randomBytes(32);
    const [address, elsewhere] = [provider.randomBytes(16), provider.randomBytes(16)];
    const account = new TextEncoder().encode('the account, identity key and all');
    const ways: [Direction, Direction][] = [['to-new-device', 'to-existing-device'], ['to-existing-device', 'to-new-device']];
    for (const [direction, reverse] of ways) {
      const sealed = await seal(provider, key, address, direction, account);
      expect(await open(provider, key, address, direction, sealed)).toEqual(account);
      // A relay reflecting the message to its sender, or splicing it into another channel, gets it refused.
      const reflected = await open(provider, key, address, reverse, sealed).catch((error: unknown) => error);
      expect(isClientError(reflected, 'BAD_RESPONSE'), direction).toBe(true);
      const spliced = await open(provider, key, elsewhere, direction, sealed).catch((error: unknown) => error);
      expect(isClientError(spliced, 'BAD_RESPONSE'), direction).toBe(true);
    }
  });
});
