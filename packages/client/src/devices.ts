/**
 * This account's devices: linking a new device, either way round (the
 * existing device shows a link code the new one enters, or the new device
 * shows a join code an existing one approves), and removing a device. Each
 * side's work once the channel key is agreed is one function, used both ways
 * round; the channel itself (codes, keys, relay) is in linking.ts.
 */
import { fromUtf8, signDeviceList, utf8 } from '@parley/protocol';

import { newDeviceKeys, saveLocal, storeKyberPreKey, storeSignedPreKey } from './account.js';
import { ServerApi } from './api.js';
import type { ParleyClient, Platform } from './client.js';
import { ownDeviceList, verifiedDeviceList } from './contacts.js';
import type { Context } from './context.js';
import { ClientError } from './errors.js';
import { closeChannel, createChannel, decodeProvision, encodeProvision, joinChannel, open, parseLinkCode, seal, type Channel } from './linking.js';
import { saveContact } from './protocolStores.js';
import { Transaction } from './store/kv.js';
import { decodeLinkedContacts, decodeLinkedHistory, json, messageKey, parse, type Contact, type LocalDevice, type StoredMessage } from './store/records.js';
import type { WebSocketFactory } from './transport.js';

/** What a newly linked device receives of the past. */
export interface HistoryWindow {
  /** Messages at most this old (default 30 days). */
  readonly maxAgeMs?: number;
  /** At most this many messages, the newest (default 1,000). */
  readonly maxMessages?: number;
}

/** A month of conversations, capped so that the history fits one provisioning message with room to spare. */
export const DEFAULT_HISTORY_WINDOW = { maxAgeMs: 30 * 24 * 3600 * 1000, maxMessages: 1_000 } as const;

/** A link in progress on the device that shows the code. */
export interface PendingLink {
  /** The link code, to show as text or QR code to the new device (and to no one else). */
  readonly code: string;
  /** Resolves once the new device has joined the account. */
  readonly done: Promise<{ readonly deviceId: number }>;
  cancel(): void;
}

/** A link in progress on a new device that shows its code, waiting for a device of the account to approve it. */
export interface LinkRequest {
  /** The join code, to show as text or QR code to a device already linked. */
  readonly code: string;
  /** Resolves with this device's client once a device of the account has approved it and it has joined. */
  readonly done: Promise<ParleyClient>;
  cancel(): void;
}

/** The new device's account, once it has joined: its server API (signed in) and local device. */
interface Joined {
  readonly api: ServerApi;
  readonly local: LocalDevice;
}

/**
 * The new device's side, once the channel key is agreed: receives the
 * account, signs itself into the device list, registers, stores what it was
 * given, and tells the existing device its id.
 * @throws ClientError `BAD_RESPONSE` (a tampered channel), `INVALID_DEVICE_LIST`, `SERVER`, `NETWORK`.
 */
async function acceptProvision(platform: Platform, serverUrl: string, channel: Channel): Promise<Joined> {
  const { provider } = platform;
  const { relay, key, address } = channel;
  const now = platform.now ?? Date.now;
  const sealed = await open(provider, key, address, 'to-new-device', (await relay.next('message')).body);
  const provision = decodeProvision(sealed);
  sealed.fill(0); // it held the identity private key, now copied into `provision`

  const api = new ServerApi(serverUrl, provider, now);
  const list = await verifiedDeviceList(provider, provision.username, provision.identity.publicKey, provision.deviceList);
  const keys = await newDeviceKeys(provider, provision.identity, now());
  const deviceList = await signDeviceList(provider, provision.identity, {
    username: provision.username,
    version: list.version + 1,
    devices: [...list.devices, { deviceId: provision.deviceId, registrationId: keys.registrationId, authKey: keys.auth.publicKey }],
  });
  await api.completeLink({
    linkToken: fromUtf8(provision.linkToken, 'link token'),
    deviceList,
    signedPreKey: keys.signedPreKey,
    kyberLastResortKey: keys.lastResort,
  });
  const local: LocalDevice = {
    username: provision.username,
    deviceId: provision.deviceId,
    registrationId: keys.registrationId,
    serverUrl: api.baseUrl,
    identity: provision.identity,
    auth: keys.auth,
    nextPreKeyId: 2,
    signedPreKeyId: 1,
    signedPreKeyAt: now(),
    lastResortCount: 1,
  };
  const tx = new Transaction(platform.store);
  saveLocal(tx, local);
  storeSignedPreKey(tx, keys.signedPreKey);
  storeKyberPreKey(tx, keys.lastResort);
  const [contacts, history] = [decodeLinkedContacts(provision.contacts), decodeLinkedHistory(provision.history)];
  for (const contact of contacts) {
    // Trust carries over; device lists are fetched afresh, and sessions are this device's own to make.
    if (contact.username !== provision.username) saveContact(tx, { ...contact, deviceListVersion: 0, devices: [] });
  }
  for (const message of history) tx.put('message', messageKey(message), json(message));
  await tx.commit();
  relay.send({ kind: 'message', body: await seal(provider, key, address, 'to-existing-device', utf8(JSON.stringify({ deviceId: local.deviceId }))) });
  api.signInAs(local);
  return { api, local };
}

/**
 * The existing device's side, once the channel key is agreed: asks the
 * server for a link token, sends the account (with history within `window`)
 * and returns the new device's id once the new device reports it has joined.
 * @throws ClientError `BAD_RESPONSE` (a tampered channel, or another device id), `INVALID_DEVICE_LIST`, `SERVER`, `NETWORK`.
 */
async function sendProvision(ctx: Context, channel: Channel, window: HistoryWindow): Promise<number> {
  const { provider, api } = ctx;
  const { relay, key, address } = channel;
  const grant = await api.linkToken();
  const { signed } = await ownDeviceList(ctx);
  const provision = encodeProvision({
    username: ctx.local.username,
    identity: ctx.local.identity,
    deviceId: grant.deviceId,
    linkToken: utf8(grant.linkToken),
    deviceList: signed,
    contacts: json((await ctx.store.list('contact', '')).map(([, bytes]) => parse<Contact>(bytes))),
    history: await history(ctx, window),
  });
  relay.send({ kind: 'message', body: await seal(provider, key, address, 'to-new-device', provision) });
  provision.fill(0);
  const answer = parse<{ deviceId?: unknown }>(await open(provider, key, address, 'to-existing-device', (await relay.next('message')).body));
  if (answer.deviceId !== grant.deviceId) throw new ClientError('BAD_RESPONSE', 'the new device reports another device id than the one it was given');
  return grant.deviceId;
}

/**
 * The new device enters the link code an existing device shows: joins its
 * channel and receives the account.
 * @throws ClientError `INVALID_ARGUMENT` (not a link code), and as `acceptProvision`.
 */
export async function joinAccount(platform: Platform, linkCode: string): Promise<Joined> {
  const code = parseLinkCode(linkCode, 'link');
  const channel = await joinChannel(platform.provider, platform.webSocket, code);
  try {
    return await acceptProvision(platform, code.serverUrl, channel);
  } finally {
    closeChannel(channel);
  }
}

/**
 * The new device shows a join code: opens a channel on `serverUrl`, and
 * `joined` receives the account once an existing device approves the code.
 * @throws ClientError `NETWORK` if the relay cannot be reached.
 */
export async function requestJoin(platform: Platform, serverUrl: string): Promise<{ readonly code: string; readonly joined: Promise<Joined>; readonly cancel: () => void }> {
  const { baseUrl } = new ServerApi(serverUrl, platform.provider);
  const { code, relay, agree } = await createChannel(platform.provider, platform.webSocket, baseUrl, 'join');
  const joined = (async () => {
    const channel = await agree().catch((error: unknown) => {
      relay.close();
      throw error;
    });
    try {
      return await acceptProvision(platform, baseUrl, channel);
    } finally {
      closeChannel(channel);
    }
  })();
  return { code, joined, cancel: () => { relay.close(); } };
}

/** History in one provisioning message stays under this, leaving room for the keys and contacts (the relay takes 4 MiB). */
const MAX_HISTORY_BYTES = 3 * 1024 * 1024;

/** The messages a linked device gets: the newest within the window, oldest first, at most MAX_HISTORY_BYTES encoded. */
async function history(ctx: Context, window: HistoryWindow): Promise<Uint8Array> {
  const since = ctx.now() - (window.maxAgeMs ?? DEFAULT_HISTORY_WINDOW.maxAgeMs);
  const all = (await ctx.store.list('message', '')).map(([, bytes]) => parse<StoredMessage>(bytes)).filter((m) => m.sentAt >= since);
  let kept = all.sort((a, b) => a.sentAt - b.sentAt).slice(-(window.maxMessages ?? DEFAULT_HISTORY_WINDOW.maxMessages));
  let encoded = json(kept);
  while (encoded.length > MAX_HISTORY_BYTES) {
    kept = kept.slice(Math.ceil(kept.length / 4)); // drop the oldest quarter
    encoded = json(kept);
  }
  return encoded;
}

/** The existing device shows a link code: opens a channel and serves the new device once it joins. */
export async function offerLink(ctx: Context, webSocket: WebSocketFactory, window: HistoryWindow, joined: () => Promise<void>): Promise<PendingLink> {
  const { code, relay, agree } = await createChannel(ctx.provider, webSocket, ctx.api.baseUrl, 'link');
  const done = (async () => {
    const channel = await agree().catch((error: unknown) => {
      relay.close();
      throw error;
    });
    try {
      const deviceId = await sendProvision(ctx, channel, window);
      await joined();
      return { deviceId };
    } finally {
      closeChannel(channel);
    }
  })();
  return { code, done, cancel: () => { relay.close(); } };
}

/**
 * The existing device approves the join code a new device shows: joins its
 * channel and sends it the account. Returns the new device's id.
 * @throws ClientError `INVALID_ARGUMENT` (not a join code), and as `sendProvision`.
 */
export async function approveJoin(ctx: Context, webSocket: WebSocketFactory, joinCode: string, window: HistoryWindow): Promise<number> {
  // The channel is on the server the new device named, which may reach this
  // account's server by another address (a proxy, say). A device on another
  // server entirely is refused there when it completes the link.
  const code = parseLinkCode(joinCode, 'join');
  const channel = await joinChannel(ctx.provider, webSocket, code);
  try {
    return await sendProvision(ctx, channel, window);
  } finally {
    closeChannel(channel);
  }
}

/** Signs the device list without `deviceId` and has the server remove the device. */
export async function removeDevice(ctx: Context, deviceId: number): Promise<void> {
  const { provider, api, local } = ctx;
  const { list } = await ownDeviceList(ctx);
  const devices = list.devices.filter((d) => d.deviceId !== deviceId);
  if (devices.length === list.devices.length) throw new ClientError('INVALID_ARGUMENT', `this account has no device ${deviceId}`);
  if (devices.length === 0) throw new ClientError('INVALID_ARGUMENT', 'an account keeps at least one device');
  await api.removeDevices(await signDeviceList(provider, local.identity, { username: local.username, version: list.version + 1, devices }));
}
