/**
 * This account's devices: joining an account as a new device, offering a
 * link from a device already in it, and removing a device. The channel itself
 * (code, keys, relay) is in linking.ts.
 */
import type { SecretBytes } from '@parley/crypto';
import { fromUtf8, signDeviceList, utf8 } from '@parley/protocol';

import { newDeviceKeys, saveLocal, storeKyberPreKey, storeSignedPreKey } from './account.js';
import { ServerApi } from './api.js';
import type { Platform } from './client.js';
import { ownDeviceList, verifiedDeviceList } from './contacts.js';
import type { Context } from './context.js';
import { ClientError } from './errors.js';
import { channelKey, decodeProvision, encodeProvision, formatLinkCode, open, parseLinkCode, RelaySocket, seal } from './linking.js';
import { saveContact } from './protocolStores.js';
import { Transaction } from './store/kv.js';
import { json, messageKey, parse, type Contact, type LocalDevice, type StoredMessage } from './store/records.js';
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

/**
 * The new device's side: receives the account over the channel the code
 * names, signs itself into the device list, registers, and stores what it
 * was given. Returns its server API (signed in) and local device.
 */
export async function joinAccount(platform: Platform, linkCode: string): Promise<{ api: ServerApi; local: LocalDevice }> {
  const code = parseLinkCode(linkCode);
  const { provider } = platform;
  const now = platform.now ?? Date.now;
  const relay = await RelaySocket.open(platform.webSocket, code.serverUrl);
  let key: SecretBytes | undefined;
  try {
    relay.send({ kind: 'join', address: code.address });
    await relay.next('joined');
    const ephemeral = await provider.x25519GenerateKeyPair();
    relay.send({ kind: 'message', body: ephemeral.publicKey });
    key = await channelKey(provider, ephemeral.privateKey, code.publicKey, code);
    const sealed = await open(provider, key, code.address, 'to-new-device', (await relay.next('message')).body);
    const provision = decodeProvision(sealed);
    sealed.fill(0); // it held the identity private key, now copied into `provision`

    const api = new ServerApi(code.serverUrl, provider, now);
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
    for (const contact of parse<Contact[]>(provision.contacts)) {
      // Trust carries over; device lists are fetched afresh, and sessions are this device's own to make.
      if (contact.username !== provision.username) saveContact(tx, { ...contact, deviceListVersion: 0, devices: [] });
    }
    for (const message of parse<StoredMessage[]>(provision.history)) tx.put('message', messageKey(message), json(message));
    await tx.commit();
    relay.send({ kind: 'message', body: await seal(provider, key, code.address, 'to-existing-device', utf8(JSON.stringify({ deviceId: local.deviceId }))) });
    api.signInAs(local);
    return { api, local };
  } finally {
    key?.wipe();
    code.secret.fill(0);
    relay.close();
  }
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

/** The existing device's side: opens a channel and serves the new device once it joins. */
export async function offerLink(ctx: Context, webSocket: WebSocketFactory, window: HistoryWindow, joined: () => Promise<void>): Promise<PendingLink> {
  const { provider, api } = ctx;
  const relay = await RelaySocket.open(webSocket, api.baseUrl);
  relay.send({ kind: 'create' });
  const { address } = await relay.next('address');
  const ephemeral = await provider.x25519GenerateKeyPair();
  const secret = provider.randomBytes(32);
  const code = formatLinkCode({ serverUrl: api.baseUrl, address, publicKey: ephemeral.publicKey, secret });
  const done = (async () => {
    let key: SecretBytes | undefined;
    try {
      await relay.next('joined');
      const theirs = (await relay.next('message')).body;
      key = await channelKey(provider, ephemeral.privateKey, theirs, { secret, address });
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
      await joined();
      return { deviceId: grant.deviceId };
    } finally {
      key?.wipe();
      secret.fill(0);
      relay.close();
    }
  })();
  return { code, done, cancel: () => { relay.close(); } };
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
