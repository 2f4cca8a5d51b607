/**
 * Sending: one message to every device of its destination accounts, each
 * copy encrypted in that device's session (started from a fetched bundle when
 * there is none). Only devices of a verified device list are encrypted to.
 * When the server answers that the device set is wrong, the device lists are
 * fetched again, sessions with stale or removed devices dropped, and the send
 * is encrypted anew and retried; no device is ever skipped.
 *
 * Sessions advanced by an encryption are stored before the send leaves, so a
 * crash can never make this device reuse a message key.
 */
import { encryptMessage, processPreKeyBundle, type Destination, type OutgoingMessage, type PreKeyBundle } from '@parley/protocol';

import type { BundleDevice } from './api.js';
import { contactWithDevices, noteIdentity, refreshContact, verifiedDeviceList } from './contacts.js';
import type { Context } from './context.js';
import { ClientError, isClientError } from './errors.js';
import { protocolStores } from './protocolStores.js';
import { Transaction } from './store/kv.js';
import { sessionKey } from './store/records.js';

/** One account to send to, and the plaintext every one of its devices gets. */
export interface Recipient {
  readonly username: string;
  readonly plaintext: Uint8Array;
}

/** Device-set refusals in a row before a send gives up (each one fetches fresh device lists). */
const MAX_MISMATCH_RETRIES = 3;
/** Sends lost with a dropped connection are tried again this many times (the transport reconnects in between). */
const MAX_NETWORK_RETRIES = 20;
/**
 * A key or device list fetch that could not reach the server, or a send the
 * server could not store just then (`UNAVAILABLE`), is tried again this many
 * times, after pauses doubling from the first to the last (about 5 s in all:
 * long enough for a server restart, short enough for someone waiting).
 */
const MAX_UNAVAILABLE_RETRIES = 6;
const RETRY_PAUSE_MS = { first: 100, max: 2_000 } as const;

const pause = (retry: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.min(RETRY_PAUSE_MS.max, RETRY_PAUSE_MS.first * 2 ** (retry - 1))));

/** Thrown inside an attempt whose premises changed (a contact's new identity key): the send is encrypted again. */
class StartOver extends Error {}

/** The bundle of one device, as the protocol takes it. */
function bundleOf(identityKey: Uint8Array, d: BundleDevice): PreKeyBundle {
  return {
    registrationId: d.registrationId,
    deviceId: d.deviceId,
    ...(d.preKey === undefined ? {} : { preKeyId: d.preKey.keyId, preKey: d.preKey.publicKey }),
    signedPreKeyId: d.signedPreKey.keyId,
    signedPreKey: d.signedPreKey.publicKey,
    signedPreKeySignature: d.signedPreKey.signature,
    identityKey,
    kyberPreKeyId: d.kyberPreKey.keyId,
    kyberPreKey: d.kyberPreKey.publicKey,
    kyberPreKeySignature: d.kyberPreKey.signature,
  };
}

/** Encrypts for every device of every recipient (except this one), starting sessions where needed. */
async function encryptAll(ctx: Context, tx: Transaction, recipients: readonly Recipient[], after: (() => void)[]): Promise<Destination[]> {
  const stores = protocolStores(tx, ctx.local.identity, ctx.local.registrationId);
  const destinations: Destination[] = [];
  for (const recipient of recipients) {
    const contact = await contactWithDevices(ctx, tx, recipient.username, after);
    if (contact.blocked) {
      throw new ClientError('IDENTITY_CHANGED', `${recipient.username}'s safety number changed since you verified it; verify again to send`);
    }
    const self = recipient.username === ctx.local.username;
    const devices = contact.devices.filter((d) => !(self && d.deviceId === ctx.local.deviceId));
    if (devices.length === 0) continue;
    const withoutSession = [];
    for (const d of devices) if ((await tx.get('session', sessionKey(recipient.username, d.deviceId))) === undefined) withoutSession.push(d.deviceId);
    if (withoutSession.length > 0) await startSessions(ctx, tx, recipient.username, withoutSession, after);
    const messages: OutgoingMessage[] = [];
    for (const d of devices) {
      const address = { name: recipient.username, deviceId: d.deviceId };
      const sealed = await encryptMessage(ctx.provider, stores, address, recipient.plaintext, ctx.now());
      messages.push({ deviceId: d.deviceId, registrationId: d.registrationId, type: sealed.type, body: sealed.body });
    }
    destinations.push({ username: recipient.username, messages });
  }
  return destinations;
}

/** Fetches bundles for `deviceIds` of `username` and starts a session with each, checking every one against the signed device list. */
async function startSessions(ctx: Context, tx: Transaction, username: string, deviceIds: readonly number[], after: (() => void)[]): Promise<void> {
  const stores = protocolStores(tx, ctx.local.identity, ctx.local.registrationId);
  const answer = await ctx.api.bundles(username, deviceIds.length === 1 ? deviceIds[0]! : '*');
  const list = await verifiedDeviceList(ctx.provider, username, answer.identityKey, answer.deviceList);
  const noted = await noteIdentity(ctx, tx, username, answer.identityKey, after);
  if (noted.changed) {
    // The old key's sessions are gone: start over from the device list the new key signs (or stop, if verified).
    const contact = await refreshContact(ctx, tx, username, after);
    if (contact.blocked) throw new ClientError('IDENTITY_CHANGED', `${username}'s safety number changed since you verified it; verify again to send`);
    throw new StartOver();
  }
  for (const id of deviceIds) {
    const listed = list.devices.find((d) => d.deviceId === id);
    const device = answer.devices.find((d) => d.deviceId === id);
    if (listed === undefined || device === undefined || device.registrationId !== listed.registrationId) {
      const problem =
        listed === undefined
          ? `offered keys for ${username}'s device ${id}, which its signed device list does not hold`
          : device === undefined
            ? `gave no keys for ${username}'s device ${id}, which its signed device list holds`
            : `offered keys for ${username}'s device ${id} under another registration id than its signed device list gives`;
      throw new ClientError('INVALID_DEVICE_LIST', `the server ${problem}`);
    }
    await processPreKeyBundle(ctx.provider, stores, { name: username, deviceId: id }, bundleOf(answer.identityKey, device), ctx.now());
    ctx.log.info('session.started', { address: `${username}.${id}`, oneTimePreKey: device.preKey !== undefined });
  }
}

/**
 * Sends to `recipients` and resolves with the server's timestamp once it has
 * stored every copy. Runs under the context's lock for its encryptions.
 * @throws ClientError `IDENTITY_CHANGED`, `UNKNOWN_USER`, `INVALID_DEVICE_LIST`, `SEND_REFUSED`, `CLOSED`.
 */
export async function send(ctx: Context, recipients: readonly Recipient[]): Promise<number> {
  let mismatches = 0;
  let networkFailures = 0;
  let unavailable = 0;
  let startedOver = 0;
  for (;;) {
    const after: (() => void)[] = [];
    let destinations: Destination[];
    try {
      destinations = await ctx.exclusive(async () => {
        const tx = new Transaction(ctx.store);
        try {
          return await encryptAll(ctx, tx, recipients, after);
        } finally {
          await tx.commit(); // sessions and what was learnt of contacts, even when a later step failed
          for (const emit of after) emit();
        }
      });
    } catch (error) {
      if (isClientError(error, 'NETWORK') && ++unavailable <= MAX_UNAVAILABLE_RETRIES) {
        await pause(unavailable); // a bundle or device list fetch: the server may be restarting
        continue;
      }
      if (!(error instanceof StartOver)) throw error;
      if (++startedOver <= MAX_MISMATCH_RETRIES) continue;
      throw new ClientError('BAD_RESPONSE', 'the server keeps serving different identity keys for the same account; nothing was sent');
    }
    if (destinations.length === 0) return ctx.now(); // nobody else to tell (note to self on a single device)
    let answer;
    try {
      answer = await ctx.transport.send(destinations);
    } catch (error) {
      if (isClientError(error, 'NETWORK') && ++networkFailures <= MAX_NETWORK_RETRIES) continue;
      throw error;
    }
    if (answer.kind === 'sent') {
      ctx.log.debug('send.stored', { recipients: destinations.length, devices: destinations.reduce((n, d) => n + d.messages.length, 0) });
      return answer.timestamp;
    }
    ctx.log.warn('send.refused', { code: answer.code, attempt: mismatches + 1 });
    if (answer.code === 'UNAVAILABLE' && ++unavailable <= MAX_UNAVAILABLE_RETRIES) {
      await pause(unavailable); // nothing was stored: the copies go again
      continue;
    }
    if (answer.code !== 'DEVICE_MISMATCH' || ++mismatches > MAX_MISMATCH_RETRIES) {
      throw new ClientError('SEND_REFUSED', `the server refused the message (${answer.code}): ${answer.message}`, { serverCode: answer.code });
    }
    // Only this send's recipients: a server naming other accounts must not make this device drop their sessions.
    const mismatched = answer.mismatches.filter((m) => recipients.some((r) => r.username === m.username));
    await ctx.exclusive(async () => {
      const tx = new Transaction(ctx.store);
      const later: (() => void)[] = [];
      try {
        for (const m of mismatched) {
          for (const id of [...m.stale, ...m.extra]) tx.delete('session', sessionKey(m.username, id));
          const contact = await refreshContact(ctx, tx, m.username, later);
          const ghosts = m.missing.filter((id) => !contact.devices.some((d) => d.deviceId === id));
          if (ghosts.length > 0) {
            // The server wants copies for devices the account's identity key never listed: a ghost device. Never.
            throw new ClientError(
              'INVALID_DEVICE_LIST',
              `the server asks for copies to ${m.username}'s device${ghosts.length > 1 ? 's' : ''} ${ghosts.join(', ')}, which ${m.username}'s signed device list does not hold; nothing was sent`,
            );
          }
        }
      } finally {
        await tx.commit();
        for (const emit of later) emit();
      }
    });
  }
}
