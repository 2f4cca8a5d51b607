/**
 * Accounts and their devices. An account's devices are exactly those of its
 * signed device list: every change writes the new list and the device rows in
 * one transaction.
 */
import type { Kysely, Transaction } from 'kysely';

import type { DeviceEntry, SignedDeviceList } from '@parley/protocol';

import { blob } from './database.js';
import type { Schema } from './schema.js';

export interface StoredDevice {
  readonly deviceId: number;
  readonly registrationId: number;
  readonly authKey: Uint8Array;
}

export interface StoredAccount {
  readonly id: number;
  readonly username: string;
  readonly identityKey: Uint8Array;
  readonly deviceList: SignedDeviceList;
  readonly deviceListVersion: number;
  readonly nextDeviceId: number;
  readonly devices: ReadonlyMap<number, StoredDevice>;
}

type Db = Kysely<Schema> | Transaction<Schema>;

async function withDevices(
  db: Db,
  row: Omit<Schema['accounts'], 'id'> & { id: number },
): Promise<StoredAccount> {
  const devices = await db
    .selectFrom('devices')
    .select(['device_id', 'registration_id', 'auth_key'])
    .where('account_id', '=', row.id)
    .orderBy('device_id')
    .execute();
  return {
    id: row.id,
    username: row.username,
    identityKey: row.identity_key,
    deviceList: { list: row.device_list, signature: row.device_list_signature },
    deviceListVersion: row.device_list_version,
    nextDeviceId: row.next_device_id,
    devices: new Map(
      devices.map((d) => [d.device_id, { deviceId: d.device_id, registrationId: d.registration_id, authKey: d.auth_key }]),
    ),
  };
}

export async function findAccount(db: Db, username: string): Promise<StoredAccount | undefined> {
  const row = await db.selectFrom('accounts').selectAll().where('username', '=', username).executeTakeFirst();
  return row === undefined ? undefined : withDevices(db, row);
}

export async function findAccountById(db: Db, id: number): Promise<StoredAccount | undefined> {
  const row = await db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
  return row === undefined ? undefined : withDevices(db, row);
}

/** Inserts an account with its first device; undefined if the username is taken. */
export async function insertAccount(
  trx: Transaction<Schema>,
  account: { username: string; identityKey: Uint8Array; deviceList: SignedDeviceList; version: number; device: DeviceEntry },
): Promise<number | undefined> {
  const row = await trx
    .insertInto('accounts')
    .values({
      username: account.username,
      identity_key: blob(account.identityKey),
      device_list: blob(account.deviceList.list),
      device_list_signature: blob(account.deviceList.signature),
      device_list_version: account.version,
      next_device_id: account.device.deviceId + 1,
    })
    .onConflict((c) => c.column('username').doNothing())
    .returning('id')
    .executeTakeFirst();
  if (row === undefined) return undefined;
  await insertDevice(trx, row.id, account.device);
  return row.id;
}

export async function insertDevice(trx: Transaction<Schema>, accountId: number, device: DeviceEntry): Promise<void> {
  await trx
    .insertInto('devices')
    .values({
      account_id: accountId,
      device_id: device.deviceId,
      registration_id: device.registrationId,
      auth_key: blob(device.authKey),
    })
    .execute();
}

/**
 * Replaces the signed device list if `previousVersion` is still the stored one
 * (a compare-and-set, so two concurrent changes cannot both win).
 * @returns whether the list was replaced.
 */
export async function replaceDeviceList(
  trx: Transaction<Schema>,
  accountId: number,
  previousVersion: number,
  deviceList: SignedDeviceList,
  version: number,
  nextDeviceId?: number,
): Promise<boolean> {
  const result = await trx
    .updateTable('accounts')
    .set({
      device_list: blob(deviceList.list),
      device_list_signature: blob(deviceList.signature),
      device_list_version: version,
      ...(nextDeviceId === undefined ? {} : { next_device_id: nextDeviceId }),
    })
    .where('id', '=', accountId)
    .where('device_list_version', '=', previousVersion)
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/** Removes a device with its keys (by cascade) and its mailbox. */
export async function deleteDevice(trx: Transaction<Schema>, accountId: number, deviceId: number): Promise<void> {
  await trx.deleteFrom('envelopes').where('account_id', '=', accountId).where('device_id', '=', deviceId).execute();
  await trx.deleteFrom('devices').where('account_id', '=', accountId).where('device_id', '=', deviceId).execute();
}
