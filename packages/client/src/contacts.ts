/**
 * Accounts as this device knows them: each contact's identity key and its
 * newest device list verified under that key. A device list that does not
 * verify, that names another account or that goes back in version is refused;
 * so only devices the account's identity key has signed are ever encrypted to.
 * A new identity key for a contact is recorded with a notice in the
 * conversation, ends the sessions made under the old key, and if the contact
 * was verified, blocks sending until the user verifies again.
 */
import { constantTimeEqual, type CryptoProvider } from '@parley/crypto';
import { isProtocolError, verifyDeviceList, type DeviceList } from '@parley/protocol';

import type { SignedDeviceListBytes } from './api.js';
import { fromBase64, toBase64 } from './base64.js';
import type { Context } from './context.js';
import { ClientError } from './errors.js';
import { loadContact, saveContact } from './protocolStores.js';
import { Transaction } from './store/kv.js';
import { json, messageKey, type Contact, type StoredMessage } from './store/records.js';

/** Verifies a signed device list for `username` under `identityKey`. @throws ClientError `INVALID_DEVICE_LIST`. */
export async function verifiedDeviceList(provider: CryptoProvider, username: string, identityKey: Uint8Array, signed: SignedDeviceListBytes): Promise<DeviceList> {
  let list: DeviceList;
  try {
    list = await verifyDeviceList(provider, identityKey, signed);
  } catch (error) {
    if (!isProtocolError(error)) throw error;
    throw new ClientError('INVALID_DEVICE_LIST', `the server served a device list for ${username} that its identity key did not sign`, { cause: error });
  }
  if (list.username !== username) throw new ClientError('INVALID_DEVICE_LIST', `the server served ${list.username}'s device list for ${username}`);
  return list;
}

/**
 * A message dated further ahead than this is refused: its time names it and
 * orders the conversation, and a sender's clock is not that wrong.
 */
export const MAX_CLOCK_SKEW_MS = 24 * 3600 * 1000;

/** Whether a message of `source` dated `dated` is too far ahead to take; if so, a notice in `conversation` says it was dropped. */
export function fromTheFuture(ctx: Context, tx: Transaction, conversation: string, source: string, dated: number, events: (() => void)[]): boolean {
  if (dated <= ctx.now() + MAX_CLOCK_SKEW_MS) return false;
  const notice = addNotice(ctx, tx, conversation, `A message from ${source} dated ${new Date(Math.min(dated, 8.64e15)).toISOString().slice(0, 10)}, in the future, was dropped.`);
  events.push(() => { ctx.events.emit('message', notice); });
  return true;
}

/** The time of each client's last notice: notices made in one millisecond get distinct times, so distinct keys. */
const lastNoticeAt = new WeakMap<Context, number>();

/** Adds a notice (an identity change, a dropped message) to a conversation, in the same transaction. */
export function addNotice(ctx: Context, tx: Transaction, conversation: string, body: string): StoredMessage {
  const now = Math.max(ctx.now(), (lastNoticeAt.get(ctx) ?? 0) + 1);
  lastNoticeAt.set(ctx, now);
  const notice: StoredMessage = {
    conversation,
    direction: 'incoming',
    author: conversation,
    authorDevice: 0,
    sentAt: now,
    storedAt: now,
    kind: 'notice',
    body,
    status: 'received',
  };
  tx.put('message', messageKey(notice), json(notice));
  return notice;
}

/**
 * Records `identityKey` as `username`'s key. A change is recorded with a
 * notice, marks the contact `keyChanged` (and `blocked` if it was verified)
 * and drops every session with the account; its events (the notice and
 * `identityChange`) are pushed to `after`, to emit once the transaction commits.
 */
export async function noteIdentity(
  ctx: Context,
  tx: Transaction,
  username: string,
  identityKey: Uint8Array,
  after: (() => void)[],
): Promise<{ contact: Contact; changed: boolean }> {
  const known = await loadContact(tx, username);
  if (known !== undefined && constantTimeEqual(fromBase64(known.identityKey), identityKey)) return { contact: known, changed: false };
  const contact: Contact = {
    username,
    identityKey: toBase64(identityKey),
    verified: false,
    blocked: known !== undefined && (known.verified || known.blocked),
    keyChanged: known !== undefined,
    deviceListVersion: 0,
    devices: [],
  };
  saveContact(tx, contact);
  if (known === undefined) return { contact, changed: false };
  for (const [key] of await tx.list('session', `${username}.`)) tx.delete('session', key);
  const notice = addNotice(
    ctx,
    tx,
    username,
    contact.blocked
      ? `${username}'s safety number changed. You had verified ${username}: sending is paused until you verify again.`
      : `${username}'s safety number changed. Verify it to be sure you are talking to ${username}.`,
  );
  after.push(() => {
    ctx.events.emit('message', notice);
    ctx.events.emit('identityChange', { username, wasVerified: contact.blocked });
  });
  return { contact, changed: true };
}

/**
 * Fetches `username`'s identity key and device list from the server, checks
 * them, and records them. Emits identity changes after the commit.
 * @throws ClientError `UNKNOWN_USER`, `INVALID_DEVICE_LIST`, `NETWORK`, `SERVER`.
 */
export async function refreshContact(ctx: Context, tx: Transaction, username: string, after: (() => void)[]): Promise<Contact> {
  const answer = await ctx.api.account(username);
  if (answer.username !== username) throw new ClientError('BAD_RESPONSE', `asked for ${username}, the server answered ${answer.username}`);
  if (username === ctx.local.username && !constantTimeEqual(answer.identityKey, ctx.local.identity.publicKey)) {
    throw new ClientError('INVALID_DEVICE_LIST', 'the server holds another identity key for this very account');
  }
  const list = await verifiedDeviceList(ctx.provider, username, answer.identityKey, answer.deviceList);
  const noted = await noteIdentity(ctx, tx, username, answer.identityKey, after);
  if (list.version < noted.contact.deviceListVersion) {
    throw new ClientError('INVALID_DEVICE_LIST', `the server served version ${list.version} of ${username}'s device list after version ${noted.contact.deviceListVersion}`);
  }
  const contact: Contact = {
    ...noted.contact,
    deviceListVersion: list.version,
    devices: list.devices.map((d) => ({ deviceId: d.deviceId, registrationId: d.registrationId })),
  };
  saveContact(tx, contact);
  if (username === ctx.local.username && list.version !== noted.contact.deviceListVersion) {
    const deviceIds = list.devices.map((d) => d.deviceId);
    after.push(() => { ctx.events.emit('devices', { version: list.version, deviceIds }); });
  }
  return contact;
}

/**
 * This account's current signed device list, as the server serves it,
 * checked: signed by the identity key, naming this account and this device,
 * and no older than the newest this device has seen (a server replaying an
 * old list could otherwise bring a removed device back).
 * @throws ClientError `INVALID_DEVICE_LIST`.
 */
export async function ownDeviceList(ctx: Context): Promise<{ list: DeviceList; signed: SignedDeviceListBytes }> {
  const { local } = ctx;
  const answer = await ctx.api.account(local.username);
  const list = await verifiedDeviceList(ctx.provider, local.username, local.identity.publicKey, answer.deviceList);
  const known = await loadContact(new Transaction(ctx.store), local.username);
  if (known !== undefined && list.version < known.deviceListVersion) {
    throw new ClientError('INVALID_DEVICE_LIST', `the server served version ${list.version} of this account's device list after version ${known.deviceListVersion}`);
  }
  if (!list.devices.some((d) => d.deviceId === local.deviceId)) {
    throw new ClientError('INVALID_DEVICE_LIST', 'the device list the server serves does not hold this device');
  }
  return { list, signed: answer.deviceList };
}

/** The contact with a device list, fetched if this device has none yet. */
export async function contactWithDevices(ctx: Context, tx: Transaction, username: string, after: (() => void)[]): Promise<Contact> {
  const known = await loadContact(tx, username);
  return known !== undefined && known.deviceListVersion > 0 ? known : refreshContact(ctx, tx, username, after);
}
