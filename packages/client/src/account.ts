/**
 * This device's keys: creating an account (identity, first device, prekeys),
 * keeping one-time prekeys stocked on the server, and rotating the signed
 * prekey and the last-resort Kyber key on a schedule.
 */
import { KemType, type CryptoProvider } from '@parley/crypto';
import {
  foldUsername,
  generateIdentityKeyPair,
  generateKyberPreKey,
  generatePreKeys,
  generateRegistrationId,
  generateSignedPreKey,
  serializeKyberPreKeyRecord,
  serializePreKeyRecord,
  serializeSignedPreKeyRecord,
  signDeviceList,
  type KyberPreKeyRecord,
  type SignedPreKeyRecord,
} from '@parley/protocol';

import type { ServerApi } from './api.js';
import { ClientError } from './errors.js';
import { Transaction, type KeyValueStore } from './store/kv.js';
import { encodeLocalDevice, type LocalDevice } from './store/records.js';

/** One-time prekeys uploaded at a time: what the server takes in one request. */
export const PREKEY_BATCH = 100;
/** Refill when fewer than this many one-time keys of a kind are left on the server. */
export const PREKEY_LOW_WATER = 20;
/** The signed prekey and the last-resort Kyber key are replaced this often (Signal rotates weekly too). */
export const SIGNED_PREKEY_ROTATION_MS = 7 * 24 * 3600 * 1000;
/** Prekey ids are 24-bit (docs/API.md §1.2). */
const MAX_KEY_ID = 0xff_ffff;

/**
 * Ids at the top of the space, kept for last-resort Kyber keys: they share
 * their id space with the one-time Kyber keys (one store here, one table on
 * the server), and a one-time key under a last-resort key's id would replace
 * it. One last-resort key a week uses 2^16 ids in over a thousand years.
 */
const LAST_RESORT_KEY_IDS = 0x1_0000;

/** One-time ids count up from 2 and wrap around below the last-resort ids, far from the ids still in use. */
const MAX_ONE_TIME_KEY_ID = MAX_KEY_ID - LAST_RESORT_KEY_IDS;

/** The n-th last-resort Kyber key's id: they count down from the top of the id space, away from the one-time keys. */
const lastResortKeyId = (n: number) => MAX_KEY_ID - ((n - 1) % LAST_RESORT_KEY_IDS);

export function storeSignedPreKey(tx: Transaction, key: SignedPreKeyRecord): void {
  tx.put('signed', String(key.id), serializeSignedPreKeyRecord(key).expose());
}

export function storeKyberPreKey(tx: Transaction, key: KyberPreKeyRecord): void {
  const record = serializeKyberPreKeyRecord(key).expose();
  const value = new Uint8Array(record.length + 1);
  value[0] = key.lastResort ? 1 : 0;
  value.set(record, 1);
  tx.put('kyber', String(key.id), value);
}

export function saveLocal(tx: Transaction, local: LocalDevice): void {
  tx.put('local', 'device', encodeLocalDevice(local));
}

/** The keys a new device registers with (its first signed prekey and last-resort key have id 1). */
export async function newDeviceKeys(provider: CryptoProvider, identity: LocalDevice['identity'], now: number) {
  return {
    auth: await generateIdentityKeyPair(provider),
    registrationId: generateRegistrationId(provider),
    signedPreKey: await generateSignedPreKey(provider, identity, 1, now),
    lastResort: await generateKyberPreKey(provider, identity, lastResortKeyId(1), now, { lastResort: true, type: KemType.Kyber1024 }),
  };
}

/**
 * Creates an account on the server with this device as device 1, and stores
 * the device locally. One-time prekeys follow with the first refill.
 * @throws ClientError `INVALID_ARGUMENT` for a username that cannot exist, `SERVER` (e.g. USERNAME_TAKEN).
 */
export async function createAccount(
  provider: CryptoProvider,
  api: ServerApi,
  store: KeyValueStore,
  username: string,
  now: number,
): Promise<LocalDevice> {
  let canonical: string;
  try {
    canonical = foldUsername(username);
  } catch (error) {
    throw new ClientError('INVALID_ARGUMENT', `"${username}" is not a valid username: 3–32 letters, digits or _, starting with a letter`, { cause: error });
  }
  const identity = await generateIdentityKeyPair(provider);
  const keys = await newDeviceKeys(provider, identity, now);
  const deviceList = await signDeviceList(provider, identity, {
    username: canonical,
    version: 1,
    devices: [{ deviceId: 1, registrationId: keys.registrationId, authKey: keys.auth.publicKey }],
  });
  await api.register({ identityKey: identity.publicKey, deviceList, signedPreKey: keys.signedPreKey, kyberLastResortKey: keys.lastResort });
  const local: LocalDevice = {
    username: canonical,
    deviceId: 1,
    registrationId: keys.registrationId,
    serverUrl: api.baseUrl,
    identity,
    auth: keys.auth,
    nextPreKeyId: 2,
    signedPreKeyId: 1,
    signedPreKeyAt: now,
    lastResortCount: 1,
  };
  const tx = new Transaction(store);
  saveLocal(tx, local);
  storeSignedPreKey(tx, keys.signedPreKey);
  storeKyberPreKey(tx, keys.lastResort);
  await tx.commit();
  return local;
}

/** The id `step` after `id` among 1..`max`, wrapping around. */
const nextId = (id: number, step: number, max: number) => ((id - 1 + step) % max) + 1;

/**
 * Uploads a batch of one-time prekeys (of both kinds) when the server holds
 * fewer than PREKEY_LOW_WATER of either. Keys are stored locally before they
 * are uploaded, so a key the server hands out is always one this device has.
 * Returns the local device with its counters advanced.
 */
export async function refillPreKeys(provider: CryptoProvider, api: Pick<ServerApi, 'keyCounts' | 'uploadKeys'>, store: KeyValueStore, local: LocalDevice, now: number): Promise<LocalDevice> {
  const counts = await api.keyCounts();
  if (counts.preKeys >= PREKEY_LOW_WATER && counts.kyberPreKeys >= PREKEY_LOW_WATER) return local;
  const first = local.nextPreKeyId;
  const oneTimeId = (i: number) => nextId(first, i, MAX_ONE_TIME_KEY_ID);
  const preKeys = (await generatePreKeys(provider, first, PREKEY_BATCH)).map((k, i) => ({ ...k, id: oneTimeId(i) }));
  const kyberPreKeys: KyberPreKeyRecord[] = [];
  for (let i = 0; i < PREKEY_BATCH; i++) kyberPreKeys.push(await generateKyberPreKey(provider, local.identity, oneTimeId(i), now, { type: KemType.Kyber1024 }));
  const updated = { ...local, nextPreKeyId: oneTimeId(PREKEY_BATCH) };
  const tx = new Transaction(store);
  for (const key of preKeys) tx.put('prekey', String(key.id), serializePreKeyRecord(key).expose());
  for (const key of kyberPreKeys) storeKyberPreKey(tx, key);
  saveLocal(tx, updated);
  await tx.commit();
  await api.uploadKeys({ preKeys, kyberPreKeys });
  return updated;
}

/** Signed prekeys and last-resort keys kept after rotation: a message built on one may arrive weeks late. */
const RETIRED_KEPT = 2;

/**
 * Replaces the signed prekey and the last-resort Kyber key once they are
 * SIGNED_PREKEY_ROTATION_MS old. The previous RETIRED_KEPT of each stay
 * stored, so that sessions started from a bundle fetched before still
 * complete; older ones are deleted.
 */
export async function rotateSignedPreKeys(provider: CryptoProvider, api: ServerApi, store: KeyValueStore, local: LocalDevice, now: number): Promise<LocalDevice> {
  if (now - local.signedPreKeyAt < SIGNED_PREKEY_ROTATION_MS) return local;
  const signedPreKey = await generateSignedPreKey(provider, local.identity, nextId(local.signedPreKeyId, 1, MAX_KEY_ID), now);
  const n = local.lastResortCount + 1;
  const lastResort = await generateKyberPreKey(provider, local.identity, lastResortKeyId(n), now, { lastResort: true, type: KemType.Kyber1024 });
  const updated = { ...local, signedPreKeyId: signedPreKey.id, signedPreKeyAt: now, lastResortCount: n };
  // The keys are stored before the server can hand them out; the rotation counts only once they are uploaded,
  // so a failed upload is tried again (under the same ids) after the next drain instead of a week later.
  const keys = new Transaction(store);
  storeSignedPreKey(keys, signedPreKey);
  storeKyberPreKey(keys, lastResort);
  await keys.commit();
  await api.uploadKeys({ signedPreKey, kyberLastResortKey: lastResort });
  const tx = new Transaction(store);
  saveLocal(tx, updated);
  const retired = n - RETIRED_KEPT - 1;
  if (retired >= 1) {
    tx.delete('signed', String(signedPreKey.id - RETIRED_KEPT - 1));
    tx.delete('kyber', String(lastResortKeyId(retired)));
  }
  await tx.commit();
  return updated;
}
