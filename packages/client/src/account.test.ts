/**
 * This device's key ids: one-time and last-resort Kyber prekeys share one id
 * space (one store on the device, one table on the server), so their ranges
 * must never meet, however many one-time keys a device hands out.
 */
import { createNodeProvider } from '@parley/crypto/node';
import { deserializeKyberPreKeyRecord, generateIdentityKeyPair, type KyberPreKeyRecord, type PreKeyRecord } from '@parley/protocol';
import { describe, expect, it } from 'vitest';

import { newDeviceKeys, PREKEY_BATCH, refillPreKeys, storeKyberPreKey, storeSignedPreKey } from './account.js';
import { Transaction } from './store/kv.js';
import { MemoryStore } from './store/memory.js';
import type { LocalDevice } from './store/records.js';

const provider = createNodeProvider();
const NOW = Date.UTC(2026, 10, 26);
/** The largest prekey id (24 bits, docs/API.md §1.2). */
const MAX_KEY_ID = 0xff_ffff;

/** A device with its signed prekey and last-resort key stored, whose one-time ids have reached `nextPreKeyId`. */
async function device(store: MemoryStore, nextPreKeyId: number) {
  const identity = await generateIdentityKeyPair(provider);
  const keys = await newDeviceKeys(provider, identity, NOW);
  const tx = new Transaction(store);
  storeSignedPreKey(tx, keys.signedPreKey);
  storeKyberPreKey(tx, keys.lastResort);
  await tx.commit();
  const local: LocalDevice = {
    username: 'alice',
    deviceId: 1,
    registrationId: keys.registrationId,
    serverUrl: 'http://127.0.0.1:8787',
    identity,
    auth: keys.auth,
    nextPreKeyId,
    signedPreKeyId: keys.signedPreKey.id,
    signedPreKeyAt: NOW,
    lastResortCount: 1,
  };
  return { local, lastResort: keys.lastResort };
}

/** A server whose stock of one-time keys is empty, keeping what it is sent. */
function emptyServer() {
  const uploads: { preKeys?: readonly PreKeyRecord[]; kyberPreKeys?: readonly KyberPreKeyRecord[] }[] = [];
  return {
    uploads,
    keyCounts: async () => ({ preKeys: 0, kyberPreKeys: 0 }),
    uploadKeys: async (keys: (typeof uploads)[number]) => {
      uploads.push(keys);
    },
  };
}

describe('prekey ids', () => {
  it('one-time Kyber prekeys wrap around below the last-resort keys, never taking the id of one (row 3)', async () => {
    const store = new MemoryStore();
    const { local, lastResort } = await device(store, MAX_KEY_ID - PREKEY_BATCH / 2);
    const server = emptyServer();
    const next = await refillPreKeys(provider, server, store, local, NOW);

    const ids = server.uploads.flatMap((u) => (u.kyberPreKeys ?? []).map((k) => k.id));
    expect(ids).toHaveLength(PREKEY_BATCH);
    expect(ids).not.toContain(lastResort.id);
    expect(Math.min(...ids)).toBeGreaterThanOrEqual(1);
    expect(next.nextPreKeyId).toBeLessThan(lastResort.id);
    // The last-resort key is still the one stored under its id, as a last-resort key.
    const bytes = (await store.get('kyber', String(lastResort.id)))!;
    const stored = deserializeKyberPreKeyRecord(bytes.subarray(1), { lastResort: bytes[0] === 1 });
    expect([stored.lastResort, Buffer.from(stored.publicKey).equals(Buffer.from(lastResort.publicKey))]).toEqual([true, true]);
  });
});
