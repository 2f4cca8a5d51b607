/**
 * The key directory: each device's signed prekey, one-time prekeys, and Kyber
 * prekeys (one-time and last-resort).
 *
 * A one-time key is handed out exactly once: claiming it is one DELETE …
 * RETURNING of the lowest id, which SQLite runs atomically and PostgreSQL runs
 * with FOR UPDATE SKIP LOCKED, so concurrent fetches each get a different key
 * (or none) and never wait on each other.
 */
import type { Kysely, Transaction } from 'kysely';

import { blob, type Engine } from './database.js';
import type { Schema } from './schema.js';

type Db = Kysely<Schema> | Transaction<Schema>;

export interface UploadedKey {
  readonly keyId: number;
  readonly publicKey: Uint8Array;
}

export interface UploadedSignedKey extends UploadedKey {
  readonly signature: Uint8Array;
}

export interface ClaimedKeys {
  readonly signedPreKey: UploadedSignedKey;
  readonly preKey: UploadedKey | undefined;
  readonly kyberPreKey: UploadedSignedKey;
}

/** Stores (or replaces) the device's signed prekey. */
export async function putSignedPreKey(db: Db, accountId: number, deviceId: number, key: UploadedSignedKey): Promise<void> {
  const values = { public_key: blob(key.publicKey), signature: blob(key.signature), key_id: key.keyId };
  await db
    .insertInto('signed_prekeys')
    .values({ account_id: accountId, device_id: deviceId, ...values })
    .onConflict((c) => c.columns(['account_id', 'device_id']).doUpdateSet(values))
    .execute();
}

/** Stores (or replaces) the device's last-resort Kyber prekey. */
export async function putKyberLastResort(db: Db, accountId: number, deviceId: number, key: UploadedSignedKey): Promise<void> {
  await db.deleteFrom('kyber_prekeys').where('account_id', '=', accountId).where('device_id', '=', deviceId).where('last_resort', '=', 1).execute();
  await db
    .insertInto('kyber_prekeys')
    .values({
      account_id: accountId,
      device_id: deviceId,
      key_id: key.keyId,
      public_key: blob(key.publicKey),
      signature: blob(key.signature),
      last_resort: 1,
    })
    .onConflict((c) =>
      c.columns(['account_id', 'device_id', 'key_id']).doUpdateSet({ public_key: blob(key.publicKey), signature: blob(key.signature), last_resort: 1 }),
    )
    .execute();
}

/** Adds one-time prekeys; a key id already stored is replaced. */
export async function addOneTimePreKeys(db: Db, accountId: number, deviceId: number, keys: readonly UploadedKey[]): Promise<void> {
  if (keys.length === 0) return;
  await db
    .insertInto('one_time_prekeys')
    .values(keys.map((k) => ({ account_id: accountId, device_id: deviceId, key_id: k.keyId, public_key: blob(k.publicKey) })))
    .onConflict((c) => c.columns(['account_id', 'device_id', 'key_id']).doUpdateSet((eb) => ({ public_key: eb.ref('excluded.public_key') })))
    .execute();
}

/** Adds one-time Kyber prekeys; a key id already stored is replaced. */
export async function addKyberPreKeys(db: Db, accountId: number, deviceId: number, keys: readonly UploadedSignedKey[]): Promise<void> {
  if (keys.length === 0) return;
  await db
    .insertInto('kyber_prekeys')
    .values(
      keys.map((k) => ({
        account_id: accountId,
        device_id: deviceId,
        key_id: k.keyId,
        public_key: blob(k.publicKey),
        signature: blob(k.signature),
        last_resort: 0,
      })),
    )
    .onConflict((c) =>
      c.columns(['account_id', 'device_id', 'key_id']).doUpdateSet((eb) => ({
        public_key: eb.ref('excluded.public_key'),
        signature: eb.ref('excluded.signature'),
        last_resort: 0,
      })),
    )
    .execute();
}

/** The id of the device's last-resort Kyber key, if it has one. */
export async function lastResortKeyId(db: Db, accountId: number, deviceId: number): Promise<number | undefined> {
  const row = await db
    .selectFrom('kyber_prekeys')
    .select('key_id')
    .where('account_id', '=', accountId)
    .where('device_id', '=', deviceId)
    .where('last_resort', '=', 1)
    .executeTakeFirst();
  return row?.key_id;
}

/** One-time keys of each kind stored for the device. */
export async function countPreKeys(db: Db, accountId: number, deviceId: number): Promise<{ preKeys: number; kyberPreKeys: number }> {
  const [preKeys, kyberPreKeys] = await Promise.all([
    db
      .selectFrom('one_time_prekeys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('account_id', '=', accountId)
      .where('device_id', '=', deviceId)
      .executeTakeFirstOrThrow(),
    db
      .selectFrom('kyber_prekeys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('account_id', '=', accountId)
      .where('device_id', '=', deviceId)
      .where('last_resort', '=', 0)
      .executeTakeFirstOrThrow(),
  ]);
  return { preKeys: preKeys.n, kyberPreKeys: kyberPreKeys.n };
}

/**
 * A device's bundle keys, claiming one one-time prekey and one one-time Kyber
 * prekey (falling back to the last-resort Kyber key). Undefined if the device
 * has not uploaded its signed prekey and last-resort key.
 */
export async function claimKeys(db: Db, engine: Engine, accountId: number, deviceId: number): Promise<ClaimedKeys | undefined> {
  const signed = await db
    .selectFrom('signed_prekeys')
    .select(['key_id', 'public_key', 'signature'])
    .where('account_id', '=', accountId)
    .where('device_id', '=', deviceId)
    .executeTakeFirst();
  if (signed === undefined) return undefined;

  const preKey = await db
    .deleteFrom('one_time_prekeys')
    .where('account_id', '=', accountId)
    .where('device_id', '=', deviceId)
    .where('key_id', '=', (eb) =>
      eb
        .selectFrom('one_time_prekeys')
        .select('key_id')
        .where('account_id', '=', accountId)
        .where('device_id', '=', deviceId)
        .orderBy('key_id')
        .limit(1)
        .$if(engine === 'postgres', (qb) => qb.forUpdate().skipLocked()),
    )
    .returning(['key_id', 'public_key'])
    .executeTakeFirst();

  const oneTimeKyber = await db
    .deleteFrom('kyber_prekeys')
    .where('account_id', '=', accountId)
    .where('device_id', '=', deviceId)
    .where('key_id', '=', (eb) =>
      eb
        .selectFrom('kyber_prekeys')
        .select('key_id')
        .where('account_id', '=', accountId)
        .where('device_id', '=', deviceId)
        .where('last_resort', '=', 0)
        .orderBy('key_id')
        .limit(1)
        .$if(engine === 'postgres', (qb) => qb.forUpdate().skipLocked()),
    )
    .returning(['key_id', 'public_key', 'signature'])
    .executeTakeFirst();
  const kyber =
    oneTimeKyber ??
    (await db
      .selectFrom('kyber_prekeys')
      .select(['key_id', 'public_key', 'signature'])
      .where('account_id', '=', accountId)
      .where('device_id', '=', deviceId)
      .where('last_resort', '=', 1)
      .executeTakeFirst());
  if (kyber === undefined) return undefined;

  return {
    signedPreKey: { keyId: signed.key_id, publicKey: signed.public_key, signature: signed.signature },
    preKey: preKey === undefined ? undefined : { keyId: preKey.key_id, publicKey: preKey.public_key },
    kyberPreKey: { keyId: kyber.key_id, publicKey: kyber.public_key, signature: kyber.signature },
  };
}
