/**
 * The key directory against a real server process, on each engine: uploads
 * are verified before anything is stored, each one-time key is handed out
 * once even to concurrent fetches, fetches are rate-limited, absent accounts
 * and devices look alike, and what is handed out starts a working session.
 */
import { describe, expect, it } from 'vitest';

import { serializePublicKey } from '@parley/crypto';
import {
  decryptMessage,
  encryptMessage,
  generateIdentityKeyPair,
  generateKyberPreKey,
  generatePreKeys,
  generateSignedPreKey,
  inMemoryStores,
  processPreKeyBundle,
  verifyPreKeySignature,
  type IdentityKeyPair,
  type PreKeyBundle,
} from '@parley/protocol';

import { engineCases, useServer } from '../../../../testing/server.js';
import { b64, fromB64, http, provider, TestAccount, type HttpResult, type TestDevice } from '../../../../testing/device.js';
import { BUNDLE_FETCH_LIMITS } from '../limits.js';

const NOW = Date.UTC(2026, 0, 1);
/** Any error message: clients branch on the code, people read the message. */
const anyText: unknown = expect.any(String);
/** Fetches in flight at once when a test spends a whole per-requester burst. */
const FETCHES_AT_ONCE = 50;

interface WireKey {
  keyId: number;
  publicKey: string;
  signature: string;
}

interface Bundles {
  username: string;
  identityKey: string;
  devices: {
    deviceId: number;
    registrationId: number;
    signedPreKey: WireKey;
    preKey?: { keyId: number; publicKey: string };
    kyberPreKey: WireKey;
  }[];
}

/** `count` one-time prekeys and one-time Kyber prekeys from `startId`, with the records that hold their private keys. */
async function oneTimeKeys(identity: IdentityKeyPair, startId: number, count: number) {
  const preKeys = await generatePreKeys(provider, startId, count);
  const kyber = await Promise.all(preKeys.map((k) => generateKyberPreKey(provider, identity, k.id, NOW)));
  return {
    preKeys,
    kyber,
    body: {
      preKeys: preKeys.map((k) => ({ keyId: k.id, publicKey: b64(serializePublicKey(k.publicKey)) })),
      kyberPreKeys: kyber.map((k) => ({ keyId: k.id, publicKey: b64(k.publicKey), signature: b64(k.signature) })),
    },
  };
}

/** The bundle of one device as @parley/protocol takes it. */
function toPreKeyBundle(bundles: Bundles, deviceId: number): PreKeyBundle {
  const device = bundles.devices.find((d) => d.deviceId === deviceId)!;
  return {
    registrationId: device.registrationId,
    deviceId,
    ...(device.preKey === undefined ? {} : { preKeyId: device.preKey.keyId, preKey: fromB64(device.preKey.publicKey) }),
    signedPreKeyId: device.signedPreKey.keyId,
    signedPreKey: fromB64(device.signedPreKey.publicKey),
    signedPreKeySignature: fromB64(device.signedPreKey.signature),
    identityKey: fromB64(bundles.identityKey),
    kyberPreKeyId: device.kyberPreKey.keyId,
    kyberPreKey: fromB64(device.kyberPreKey.publicKey),
    kyberPreKeySignature: fromB64(device.kyberPreKey.signature),
  };
}

const verifies = (identityKey: Uint8Array, key: WireKey) => verifyPreKeySignature(provider, identityKey, fromB64(key.publicKey), fromB64(key.signature));

describe.each(engineCases)('key directory on $title', (engineCase) => {
  const { available } = engineCase;
  const suite = useServer(engineCase);
  let counter = 0;
  const name = (prefix: string) => `${prefix}_${++counter}`;

  const upload = (token: string, body: unknown) => http(suite.server.url, 'PUT', '/v1/keys', { token, body });
  const counts = async (token: string) => (await http<{ preKeys: number; kyberPreKeys: number }>(suite.server.url, 'GET', '/v1/keys', { token })).body;
  const fetchBundles = (token: string, username: string, deviceId: number | '*') =>
    http<Bundles>(suite.server.url, 'GET', `/v1/keys/${username}/${deviceId}`, { token });
  /** Registers an account and logs its first device in. */
  async function member(prefix: string): Promise<{ account: TestAccount; device: TestDevice; token: string }> {
    const account = await TestAccount.register(suite.server.url, name(prefix));
    const device = account.devices[0]!;
    return { account, device, token: await device.login() };
  }

  it.skipIf(!available)('refuses an upload with any bad signature and stores nothing of it', async () => {
    const target = await member('target');
    const requester = await member('requester');
    const stranger = await generateIdentityKeyPair(provider);
    const good = await oneTimeKeys(target.account.identity, 100, 5);
    const forged = (await oneTimeKeys(stranger, 105, 1)).body.kyberPreKeys[0]!;
    const swapped = { ...good.body.kyberPreKeys[1]!, signature: good.body.kyberPreKeys[2]!.signature };
    const signed = await generateSignedPreKey(provider, stranger, 9, NOW);
    const strangerSigned = { keyId: 9, publicKey: b64(serializePublicKey(signed.publicKey)), signature: b64(signed.signature) };
    const lastResort = await generateKyberPreKey(provider, stranger, 9, NOW, { lastResort: true });
    const strangerLastResort = { keyId: 9, publicKey: b64(lastResort.publicKey), signature: b64(lastResort.signature) };

    const refused: [unknown, number, string][] = [
      [{ ...good.body, kyberPreKeys: [...good.body.kyberPreKeys, forged] }, 400, 'INVALID_SIGNATURE'],
      [{ ...good.body, kyberPreKeys: [...good.body.kyberPreKeys.slice(0, 1), swapped] }, 400, 'INVALID_SIGNATURE'],
      [{ ...good.body, signedPreKey: strangerSigned }, 400, 'INVALID_SIGNATURE'],
      [{ ...good.body, kyberLastResortKey: strangerLastResort }, 400, 'INVALID_SIGNATURE'],
      [{ ...good.body, preKeys: [{ keyId: 200, publicKey: b64(new Uint8Array(33).fill(6)) }] }, 400, 'BAD_REQUEST'],
      // A key id named twice in one list (found by fuzzing: PostgreSQL refused the upsert, a 500).
      [{ ...good.body, preKeys: [good.body.preKeys[0]!, good.body.preKeys[0]!] }, 400, 'BAD_REQUEST'],
      [{ ...good.body, kyberPreKeys: [...good.body.kyberPreKeys, good.body.kyberPreKeys[0]!] }, 400, 'BAD_REQUEST'],
    ];
    for (const [body, status, code] of refused) {
      const result = await upload(target.token, body);
      expect({ status: result.status, body: result.body }).toEqual({ status, body: { error: { code, message: anyText } } });
      expect(await counts(target.token)).toEqual({ preKeys: 0, kyberPreKeys: 0 });
    }
    // Neither the signed prekey nor the last-resort key was replaced.
    const bundle = (await fetchBundles(requester.token, target.account.username, 1)).body.devices[0]!;
    expect(bundle.preKey).toBeUndefined();
    expect([bundle.signedPreKey.keyId, bundle.kyberPreKey.keyId]).toEqual([1, 1]);

    expect((await upload(target.token, good.body)).status).toBe(204);
    expect(await counts(target.token)).toEqual({ preKeys: 5, kyberPreKeys: 5 });
  });

  it.skipIf(!available)('counts go down as bundles are fetched, then the last-resort Kyber key is handed out', async () => {
    const target = await member('target');
    const requester = await member('requester');
    const keys = await oneTimeKeys(target.account.identity, 100, 3);
    expect((await upload(target.token, keys.body)).status).toBe(204);
    expect(await counts(target.token)).toEqual({ preKeys: 3, kyberPreKeys: 3 });
    const seen: number[][] = [];
    for (let left = 2; left >= 0; left--) {
      const device = (await fetchBundles(requester.token, target.account.username, 1)).body.devices[0]!;
      seen.push([device.preKey!.keyId, device.kyberPreKey.keyId]);
      expect(await counts(target.token)).toEqual({ preKeys: left, kyberPreKeys: left });
    }
    expect(seen.flat().sort((a, b) => a - b)).toEqual([100, 100, 101, 101, 102, 102]);
    const after = (await fetchBundles(requester.token, target.account.username, 1)).body.devices[0]!;
    expect(after.preKey).toBeUndefined();
    expect(after.kyberPreKey.keyId).toBe(1);
    expect(await verifies(target.account.identity.publicKey, after.kyberPreKey)).toBe(true);
    expect(await counts(target.token)).toEqual({ preKeys: 0, kyberPreKeys: 0 });
  });

  it.skipIf(!available)('concurrent fetches never share a one-time key, and then fall back to the last-resort key', async () => {
    const perRequester = BUNDLE_FETCH_LIMITS.perTarget.burst; // fetches one requester may make of one target at once
    const requesterCount = 6;
    const total = perRequester * requesterCount;
    const target = await member('target');
    const keys = await oneTimeKeys(target.account.identity, 100, total);
    expect((await upload(target.token, keys.body)).status).toBe(204);
    const requesters = await Promise.all(Array.from({ length: requesterCount + 1 }, () => member('requester')));

    const results = await Promise.all(
      requesters
        .slice(0, requesterCount)
        .flatMap((r) => Array.from({ length: perRequester }, () => fetchBundles(r.token, target.account.username, 1))),
    );
    expect(results.map((r) => r.status)).toEqual(Array<number>(total).fill(200));
    const devices = results.map((r) => r.body.devices[0]!);
    const preKeys = devices.flatMap((d) => (d.preKey === undefined ? [] : [d.preKey]));
    const kyber = devices.map((d) => d.kyberPreKey);
    expect(preKeys).toHaveLength(total);
    expect(new Set(preKeys.map((k) => k.keyId)).size).toBe(total);
    expect(new Set(kyber.map((k) => k.keyId)).size).toBe(total);
    // Each id came with the key uploaded under it.
    const uploaded = new Map(keys.body.preKeys.map((k) => [k.keyId, k.publicKey]));
    const uploadedKyber = new Map(keys.body.kyberPreKeys.map((k) => [k.keyId, k.publicKey]));
    expect(preKeys.every((k) => uploaded.get(k.keyId) === k.publicKey)).toBe(true);
    expect(kyber.every((k) => uploadedKyber.get(k.keyId) === k.publicKey)).toBe(true);
    const identityKey = target.account.identity.publicKey;
    expect(await Promise.all([...kyber, devices[0]!.signedPreKey].map((k) => verifies(identityKey, k)))).not.toContain(false);
    expect(await counts(target.token)).toEqual({ preKeys: 0, kyberPreKeys: 0 });

    const last = (await fetchBundles(requesters[requesterCount]!.token, target.account.username, 1)).body.devices[0]!;
    expect(last.preKey).toBeUndefined();
    expect(last.kyberPreKey.keyId).toBe(1); // the last-resort key registered with the account
    expect(await verifies(identityKey, last.kyberPreKey)).toBe(true);
  });

  it.skipIf(!available)('refuses the fetch after a burst from one requester to one target with 429 and retry-after', async () => {
    const burst = BUNDLE_FETCH_LIMITS.perTarget.burst;
    const target = await member('target');
    const other = await member('other');
    const requester = await member('requester');
    expect((await upload(target.token, (await oneTimeKeys(target.account.identity, 100, burst + 1)).body)).status).toBe(204);
    for (let i = 0; i < burst; i++) expect((await fetchBundles(requester.token, target.account.username, 1)).status).toBe(200);

    const refused = await fetchBundles(requester.token, target.account.username, 1);
    expect({ status: refused.status, body: refused.body }).toEqual({
      status: 429,
      body: { error: { code: 'RATE_LIMITED', message: anyText } },
    });
    expect(refused.headers.get('retry-after')).toMatch(/^[1-9][0-9]*$/);
    // The refused fetch took no key, and the limit is per target: another one still answers.
    expect(await counts(target.token)).toEqual({ preKeys: 1, kyberPreKeys: 1 });
    expect((await fetchBundles(requester.token, other.account.username, 1)).status).toBe(200);
  });

  it.skipIf(!available)('refuses a requester who has fetched the keys of many accounts with 429 and retry-after, and no one else (row 11)', async () => {
    const { burst } = BUNDLE_FETCH_LIMITS.perRequester;
    const target = await member('target');
    const requester = await member('requester');
    const bystander = await member('bystander');
    const fetchOnce = async () => (await fetchBundles(requester.token, name('nobody'), 1)).status;

    // Each fetch names another account, absent (which costs the same as present), so no per-target bucket runs dry.
    const answered: number[] = [];
    while (!answered.includes(429) && answered.length < 2 * burst) {
      answered.push(...(await Promise.all(Array.from({ length: FETCHES_AT_ONCE }, fetchOnce))));
    }
    expect(answered.filter((status) => status === 404).length).toBeGreaterThanOrEqual(burst);
    expect(answered.filter((status) => status !== 404 && status !== 429)).toEqual([]);

    // The budget is the requester's: a target it never asked for is refused too, lookups as well as fetches. The
    // bucket refills at perSecond, so on a busy machine one or two of these may get through; nearly all may not.
    const [fetches, lookups] = await Promise.all([
      Promise.all(Array.from({ length: FETCHES_AT_ONCE }, () => fetchBundles(requester.token, target.account.username, 1))),
      Promise.all(Array.from({ length: FETCHES_AT_ONCE }, () => http(suite.server.url, 'GET', `/v1/accounts/${target.account.username}`, { token: requester.token }))),
    ]);
    for (const answers of [fetches, lookups]) expect(answers.filter((a) => a.status === 429).length).toBeGreaterThanOrEqual(FETCHES_AT_ONCE - 2);
    const refused = fetches.find((a) => a.status === 429)!;
    expect(refused.body).toEqual({ error: { code: 'RATE_LIMITED', message: anyText } });
    expect(refused.headers.get('retry-after')).toMatch(/^[1-9][0-9]*$/);
    // Anyone else still gets the target's keys.
    expect((await fetchBundles(bystander.token, target.account.username, 1)).status).toBe(200);
  });

  it.skipIf(!available)('answers a missing account, a missing device and an invalid name with the same 404', async () => {
    const target = await member('target');
    const requester = await member('requester');
    const raw = async (path: string) => {
      const response = await fetch(`${suite.server.url}${path}`, { headers: { authorization: `Bearer ${requester.token}` } });
      return { status: response.status, text: await response.text() };
    };
    const missing = [
      await raw(`/v1/keys/${name('nobody')}/1`),
      await raw(`/v1/keys/${target.account.username}/2`),
      await raw(`/v1/keys/${name('nobody')}/*`),
      await raw('/v1/keys/no-such-name!/1'),
      await raw('/v1/keys/x/1'),
      await raw(`/v1/accounts/${name('nobody')}`),
      await raw('/v1/accounts/no-such-name!'),
      await raw('/v1/accounts/x'),
    ];
    expect(missing[0]!.status).toBe(404);
    expect(JSON.parse(missing[0]!.text)).toEqual({ error: { code: 'NOT_FOUND', message: anyText } });
    for (const answer of missing) expect(answer).toEqual(missing[0]);
    expect((await raw(`/v1/keys/${target.account.username}/1`)).status).toBe(200);
    expect((await raw(`/v1/accounts/${target.account.username}`)).status).toBe(200);
  });

  it.skipIf(!available)('`*` answers with every device of the account but the requester', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const alice2 = await alice.link(alice.devices[0]!);
    await alice.link(alice.devices[0]!);
    const bob = await member('bob');

    const fromBob = (await fetchBundles(bob.token, alice.username, '*')).body;
    expect(fromBob.devices.map((d) => [d.deviceId, d.registrationId])).toEqual(alice.devices.map((d) => [d.deviceId, d.registrationId]));
    const fromAlice2 = await fetchBundles(await alice2.login(), alice.username, '*');
    expect(fromAlice2.body.devices.map((d) => d.deviceId)).toEqual([1, 3]);
    // Bob's only device is the requester: nothing to answer with.
    expect((await fetchBundles(bob.token, bob.account.username, '*')).status).toBe(404);
  });

  it.skipIf(!available)('a fetched bundle starts a session the target can decrypt, with or without a one-time prekey', async () => {
    const target = await member('target');
    const identity = target.account.identity;
    const stores = inMemoryStores(identity, target.device.registrationId);
    const signed = await generateSignedPreKey(provider, identity, 5, NOW);
    const lastResort = await generateKyberPreKey(provider, identity, 6, NOW, { lastResort: true });
    const oneTime = await oneTimeKeys(identity, 200, 1);
    stores.preKeys.storeSignedPreKey(signed);
    stores.preKeys.storeKyberPreKey(lastResort);
    stores.preKeys.storePreKey(oneTime.preKeys[0]!);
    stores.preKeys.storeKyberPreKey(oneTime.kyber[0]!);
    const uploaded = await upload(target.token, {
      ...oneTime.body,
      signedPreKey: { keyId: 5, publicKey: b64(serializePublicKey(signed.publicKey)), signature: b64(signed.signature) },
      kyberLastResortKey: { keyId: 6, publicKey: b64(lastResort.publicKey), signature: b64(lastResort.signature) },
    });
    expect(uploaded.status).toBe(204);

    for (const [expected, prefix] of [[{ preKeyId: 200, kyberPreKeyId: 200 }, 'first'], [{ preKeyId: undefined, kyberPreKeyId: 6 }, 'second']] as const) {
      const sender = await member(prefix);
      const senderStores = inMemoryStores(sender.account.identity, sender.device.registrationId);
      const fetched: HttpResult<Bundles> = await fetchBundles(sender.token, target.account.username, 1);
      const bundle = toPreKeyBundle(fetched.body, 1);
      expect({ preKeyId: bundle.preKeyId, kyberPreKeyId: bundle.kyberPreKeyId, signedPreKeyId: bundle.signedPreKeyId }).toEqual({ ...expected, signedPreKeyId: 5 });
      await processPreKeyBundle(provider, senderStores, { name: target.account.username, deviceId: 1 }, bundle, NOW);
      const plaintext = new TextEncoder().encode(`hello from ${sender.account.username}`);
      const message = await encryptMessage(provider, senderStores, { name: target.account.username, deviceId: 1 }, plaintext, NOW);
      const opened = await decryptMessage(provider, stores, { name: sender.account.username, deviceId: 1 }, message);
      expect(opened).toEqual(plaintext);
    }
  });
});
