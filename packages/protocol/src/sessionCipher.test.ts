/**
 * Session management over the stores: archived sessions keep decrypting late
 * messages, a message for an archived session brings it back, and an
 * unanswered session expires.
 */
import { createNodeProvider } from '@parley/crypto/node';
import { describe, expect, it } from 'vitest';

import { NOW, parleyPeer } from '../../../testing/peers.js';
import {
  decryptMessage,
  encryptMessage,
  isProtocolError,
  limits,
  MessageType,
  serializeSessionRecord,
  type IdentityKeyStore,
} from './index.js';

const provider = createNodeProvider();
const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array) => new TextDecoder().decode(b);

describe('session records', () => {
  it('decrypt late messages on archived sessions, on both sides', async () => {
    const [alice, bob] = [await parleyPeer(provider, 'alice'), await parleyPeer(provider, 'bob')];
    await alice.startSession(bob, await bob.bundle());
    await bob.decrypt(alice.address, await alice.encrypt(bob.address, text('hello')));
    await alice.decrypt(bob.address, await bob.encrypt(alice.address, text('hi')));

    // In flight on the first session, both ways.
    const lateToBob = await alice.encrypt(bob.address, text('late to bob'));
    const lateToAlice = await bob.encrypt(alice.address, text('late to alice'));

    // Alice starts over from a fresh bundle; Bob accepts the new session.
    await alice.startSession(bob, await bob.bundle());
    const restart = await alice.encrypt(bob.address, text('new session'));
    expect(restart.type).toBe(MessageType.PreKey);
    expect(read(await bob.decrypt(alice.address, restart))).toBe('new session');
    const [aliceRecord, bobRecord] = [await alice.stores.sessions.loadSession(bob.address), await bob.stores.sessions.loadSession(alice.address)];
    expect(aliceRecord!.previous.length).toBe(1);
    expect(bobRecord!.previous.length).toBe(1);
    expect(bobRecord!.previous[0]!.pendingPreKey).toBeUndefined();

    expect(read(await bob.decrypt(alice.address, lateToBob))).toBe('late to bob');
    expect(read(await alice.decrypt(bob.address, lateToAlice))).toBe('late to alice');
    // The late message promoted the old session back to current on each side; both still talk.
    expect(read(await bob.decrypt(alice.address, await alice.encrypt(bob.address, text('still here'))))).toBe('still here');
    expect(read(await alice.decrypt(bob.address, await bob.encrypt(alice.address, text('me too'))))).toBe('me too');
  });

  it('keep at most ARCHIVED_STATES_MAX_LENGTH archived sessions', async () => {
    const [alice, bob] = [await parleyPeer(provider, 'alice'), await parleyPeer(provider, 'bob', 1, 0)];
    const bundle = await bob.bundle({ withOneTimePreKey: false });
    for (let i = 0; i < limits.ARCHIVED_STATES_MAX_LENGTH + 3; i++) await alice.startSession(bob, bundle);
    const record = await alice.stores.sessions.loadSession(bob.address);
    expect(record!.previous.length).toBe(limits.ARCHIVED_STATES_MAX_LENGTH);
  });

  it('stop sending on a session the peer never answered after MAX_UNACKNOWLEDGED_SESSION_AGE_MS', async () => {
    const [alice, bob] = [await parleyPeer(provider, 'alice'), await parleyPeer(provider, 'bob')];
    await alice.startSession(bob, await bob.bundle());
    const later = NOW + limits.MAX_UNACKNOWLEDGED_SESSION_AGE_MS + 1;
    const error = await encryptMessage(provider, alice.stores, bob.address, text('anyone?'), later).catch((e: unknown) => e);
    expect(isProtocolError(error, 'NO_SESSION')).toBe(true);
    // Once answered, age no longer matters.
    await bob.decrypt(alice.address, await alice.encrypt(bob.address, text('hi')));
    await alice.decrypt(bob.address, await bob.encrypt(alice.address, text('hi')));
    expect((await encryptMessage(provider, alice.stores, bob.address, text('a year on'), later)).type).toBe(MessageType.Whisper);
  });
});

describe('failure paths that must leave the stores usable', () => {
  it('a late message refused after decryption (untrusted identity) leaves its skipped key intact', async () => {
    const [alice, bob] = [await parleyPeer(provider, 'alice'), await parleyPeer(provider, 'bob')];
    await alice.startSession(bob, await bob.bundle());
    await bob.decrypt(alice.address, await alice.encrypt(bob.address, text('hi')));
    await alice.decrypt(bob.address, await bob.encrypt(alice.address, text('hello')));
    const late = await alice.encrypt(bob.address, text('late'));
    expect(late.type).toBe(MessageType.Whisper);
    await bob.decrypt(alice.address, await alice.encrypt(bob.address, text('on time')));

    const aliceKey = (await bob.stores.identities.getIdentity(alice.address))!;
    await bob.stores.identities.saveIdentity(alice.address, (await parleyPeer(provider, 'x')).identityKey);
    expect(isProtocolError(await bob.decrypt(alice.address, late).catch((e: unknown) => e), 'UNTRUSTED_IDENTITY')).toBe(true);
    const record = (await bob.stores.sessions.loadSession(alice.address))!;
    expect(() => serializeSessionRecord(record)).not.toThrow();

    await bob.stores.identities.saveIdentity(alice.address, aliceKey);
    expect(read(await bob.decrypt(alice.address, late))).toBe('late');
  });

  it('two concurrent deliveries of one message show it once', async () => {
    const [alice, bob] = [await parleyPeer(provider, 'alice'), await parleyPeer(provider, 'bob')];
    await alice.startSession(bob, await bob.bundle());
    const first = await alice.encrypt(bob.address, text('first'));
    const results = await Promise.allSettled([bob.decrypt(alice.address, first), bob.decrypt(alice.address, first)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected');
    expect(isProtocolError(rejected?.reason, 'DUPLICATE_MESSAGE')).toBe(true);
  });

  it("refuses a second prekey message whose identity key was swapped, even where the store trusts on receipt", async () => {
    const [alice, bob] = [await parleyPeer(provider, 'alice'), await parleyPeer(provider, 'bob')];
    const real = bob.stores.identities;
    const trusting: IdentityKeyStore = {
      getIdentityKeyPair: () => real.getIdentityKeyPair(),
      getLocalRegistrationId: () => real.getLocalRegistrationId(),
      isTrustedIdentity: async () => true, // as some apps do for incoming messages
      saveIdentity: (address, key) => real.saveIdentity(address, key),
      getIdentity: (address) => real.getIdentity(address),
    };
    const stores = { ...bob.stores, identities: trusting };
    await alice.startSession(bob, await bob.bundle());
    const first = await alice.encrypt(bob.address, text('one'));
    const second = await alice.encrypt(bob.address, text('two'));
    await decryptMessage(provider, stores, alice.address, first);

    const mallory = (await parleyPeer(provider, 'mallory')).identityKey;
    const body = second.body.slice();
    body.set(mallory, Buffer.from(body).indexOf(Buffer.from(alice.identityKey)));
    const error = await decryptMessage(provider, stores, alice.address, { type: MessageType.PreKey, body }).catch((e: unknown) => e);
    expect(isProtocolError(error, 'INVALID_MESSAGE')).toBe(true);
    expect(Buffer.from((await bob.stores.identities.getIdentity(alice.address))!).equals(Buffer.from(alice.identityKey))).toBe(true);
    expect(read(await decryptMessage(provider, stores, alice.address, second))).toBe('two');
  });

  it('keeps no view into the buffer a message arrived in', async () => {
    const [alice, bob] = [await parleyPeer(provider, 'alice'), await parleyPeer(provider, 'bob')];
    await alice.startSession(bob, await bob.bundle());
    const first = await alice.encrypt(bob.address, text('first'));
    const buffer = first.body.slice();
    await bob.decrypt(alice.address, { type: first.type, body: buffer });
    buffer.fill(0); // a transport reusing its receive buffer
    expect(read(await bob.decrypt(alice.address, await alice.encrypt(bob.address, text('second'))))).toBe('second');
    expect(read(await alice.decrypt(bob.address, await bob.encrypt(alice.address, text('reply'))))).toBe('reply');
  });
});
