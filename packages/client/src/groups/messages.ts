/**
 * Group messages: this device's sender key, distributed one-to-one to the
 * member devices that lack it, then each text encrypted once and handed to
 * the server by multicast; and receiving keys and messages, refusing what
 * comes from outside the roster or through the wrong channel. groups.ts has
 * the overview.
 */
import { fromHex, toHex } from '@parley/crypto';
import {
  createSenderKeyDistributionMessage,
  decodeSenderKeyDistributionMessage,
  decodeSenderKeyMessage,
  groupDecrypt,
  groupEncrypt,
  isProtocolError,
  processSenderKeyDistributionMessage,
  SENDER_KEY_MESSAGE_TYPE,
  type DeviceMismatch,
  type Envelope,
  type MulticastRecipient,
} from '@parley/protocol';

import { decodeContent, encodeContent, type Content } from '../content.js';
import { contactWithDevices, fromTheFuture, refreshContact } from '../contacts.js';
import type { Context } from '../context.js';
import { ClientError, isClientError } from '../errors.js';
import { send } from '../sender.js';
import { Transaction } from '../store/kv.js';
import { json, messageKey, outgoingText, parse, sessionKey, type Contact, type StoredMessage } from '../store/records.js';
import { deliverChanges } from './changes.js';
import { alert, existingGroup, locked } from './groups.js';
import {
  groupConversation,
  groupOfSenderKey,
  loadGroup,
  newDistributionId,
  recordSenderKeyGroup,
  saveGroup,
  senderKeyStore,
  type GroupRecord,
} from './state.js';

/** Group sends refused for a changing device set, in a row, before giving up. */
const MAX_MISMATCH_RETRIES = 3;

const randomDistributionId = (ctx: Context) => newDistributionId(ctx.provider.randomBytes(16));

// --- Messages -------------------------------------------------------------------

interface Plan {
  readonly distributionId: string;
  /** The roster version planned for. */
  readonly version: number;
  /** Every device of every member but this one, from device lists their roster keys signed. */
  readonly recipients: MulticastRecipient[];
  /** Members with a device that lacks this device's current sender key. */
  readonly needKey: string[];
}

/** The devices of `member` to send to, or undefined (with an alert) if the roster's key is not the one this device knows. */
async function devicesOf(ctx: Context, tx: Transaction, events: (() => void)[], groupId: string, member: GroupRecord['members'][number], contact: Contact) {
  if (contact.identityKey !== member.identityKey) {
    // Said once per key, not at every message.
    const warned = `${member.username}:${contact.identityKey}`;
    const record = await existingGroup(tx, groupId);
    if (!(record.warned ?? []).includes(warned)) {
      alert(ctx, tx, events, record.id, 'KEY_MISMATCH', `${member.username}'s identity key is not the one the group lists for them: nothing is sent to ${member.username} until an admin adds them again.`);
      saveGroup(tx, { ...record, warned: [...(record.warned ?? []), warned] });
    }
    return undefined;
  }
  const self = member.username === ctx.local.username;
  return contact.devices.filter((d) => !(self && d.deviceId === ctx.local.deviceId));
}

async function plan(ctx: Context, tx: Transaction, events: (() => void)[], record: GroupRecord): Promise<Plan> {
  const recipients: MulticastRecipient[] = [];
  const needKey: string[] = [];
  const keyed = new Set(record.keyed);
  const distributionId = record.distributionId ?? randomDistributionId(ctx);
  for (const member of record.members) {
    const contact = await contactWithDevices(ctx, tx, member.username, events); // this account's own too: its other devices
    const devices = await devicesOf(ctx, tx, events, record.id, member, contact);
    if (devices === undefined || devices.length === 0) continue;
    recipients.push({ username: member.username, devices });
    if (devices.some((d) => !keyed.has(sessionKey(member.username, d.deviceId)))) needKey.push(member.username);
  }
  if (record.distributionId === undefined) saveGroup(tx, { ...(await existingGroup(tx, record.id)), distributionId, keyed: [] });
  return { distributionId, version: record.version, recipients, needKey };
}

/**
 * Sends a text to a group: this device's sender key first to every member
 * device that lacks it, then the text, encrypted once, to all of them.
 * Resolves with the stored message once the server has every copy.
 * @throws ClientError `UNKNOWN_GROUP`, `NOT_A_MEMBER`, `INVALID_DEVICE_LIST` (a ghost device), `SEND_REFUSED`, and what sending throws.
 */
export async function sendGroupText(ctx: Context, groupId: string, body: string, sentAt: number): Promise<StoredMessage> {
  await existingGroup(new Transaction(ctx.store), groupId); // an unknown id is UNKNOWN_GROUP before anything else
  const plaintext = encodeContent({ kind: 'group-text', sentAt, groupId: fromHex(groupId), body });
  await deliverChanges(ctx, groupId);
  const local = ctx.local;
  const message = outgoingText(local, groupConversation(groupId), body, sentAt);
  await locked(ctx, async (tx, events) => {
    const record = await existingGroup(tx, groupId);
    if (!record.member) throw new ClientError('NOT_A_MEMBER', 'you are no longer in this group');
    tx.put('message', messageKey(message), json(message));
    events.push(() => { ctx.events.emit('message', message); });
  });

  try {
    await deliverGroupText(ctx, groupId, plaintext);
  } catch (error) {
    const failed = { ...message, status: 'failed' as const }; // not stuck at "sending": the app can say so
    await locked(ctx, async (tx, events) => {
      tx.put('message', messageKey(failed), json(failed));
      events.push(() => { ctx.events.emit('status', failed); });
    });
    throw error;
  }

  const sent = { ...message, status: 'sent' as const };
  await locked(ctx, async (tx, events) => {
    tx.put('message', messageKey(sent), json(sent));
    events.push(() => { ctx.events.emit('status', sent); });
  });
  return sent;
}

/** Encrypts a group text under this device's sender key and multicasts it, handing the key first to devices without it. */
async function deliverGroupText(ctx: Context, groupId: string, plaintext: Uint8Array): Promise<void> {
  const local = ctx.local;
  for (let attempt = 0; ; attempt++) {
    if (attempt > MAX_MISMATCH_RETRIES) throw new ClientError('SEND_REFUSED', 'the group or its devices kept changing while the message was being sent');
    const { distributionId, version, recipients, needKey } = await locked(ctx, async (tx, events) => plan(ctx, tx, events, await existingGroup(tx, groupId)));
    if (needKey.length > 0) await distributeSenderKey(ctx, groupId, distributionId, needKey);
    if (recipients.length === 0) break; // alone in the group, on one device
    const ciphertext = await locked(ctx, async (tx) => {
      // A change taken while the key went out (a removal, say) makes this plan stale: plan again.
      const record = await existingGroup(tx, groupId);
      if (record.version !== version || record.distributionId !== distributionId) return undefined;
      const sealed = await groupEncrypt(ctx.provider, senderKeyStore(tx), { name: local.username, deviceId: local.deviceId }, distributionId, plaintext);
      return sealed.serialized;
    });
    if (ciphertext === undefined) continue;
    const answer = await multicast(ctx, ciphertext, recipients);
    if (answer.kind === 'sent') break;
    if (answer.code !== 'DEVICE_MISMATCH') {
      throw new ClientError('SEND_REFUSED', `the server refused the group message (${answer.code}): ${answer.message}`, { serverCode: answer.code });
    }
    await reconcile(ctx, groupId, answer.mismatches);
  }
}

/** Network failures a multicast survives (the transport reconnects in between). */
const MAX_NETWORK_RETRIES = 20;

async function multicast(ctx: Context, body: Uint8Array, recipients: readonly MulticastRecipient[]) {
  for (let failures = 0; ; failures++) {
    try {
      return await ctx.transport.multicast(SENDER_KEY_MESSAGE_TYPE, body, recipients);
    } catch (error) {
      if (!isClientError(error, 'NETWORK') || failures >= MAX_NETWORK_RETRIES) throw error;
    }
  }
}

/** Sends this device's current sender key, one-to-one, to every device of `usernames`, and records who holds it. */
async function distributeSenderKey(ctx: Context, groupId: string, distributionId: string, usernames: readonly string[]): Promise<void> {
  const self = { name: ctx.local.username, deviceId: ctx.local.deviceId };
  const distribution = await locked(ctx, async (tx) => {
    const message = await createSenderKeyDistributionMessage(ctx.provider, senderKeyStore(tx), self, distributionId);
    return message.serialized;
  });
  const plaintext = encodeContent({ kind: 'sender-key', sentAt: ctx.now(), groupId: fromHex(groupId), distribution });
  await send(ctx, usernames.map((username) => ({ username, plaintext })));
  await locked(ctx, async (tx, events) => {
    const record = await existingGroup(tx, groupId);
    if (record.distributionId !== distributionId) return; // a removal made it stale meanwhile
    const keyed = new Set(record.keyed);
    for (const username of usernames) {
      const contact = await contactWithDevices(ctx, tx, username, events);
      for (const d of contact.devices) keyed.add(sessionKey(username, d.deviceId));
    }
    saveGroup(tx, { ...record, keyed: [...keyed] });
  });
}

/**
 * After a device-set refusal: fetches the named members' device lists again
 * and forgets who held the key on devices that changed. A server naming an
 * account outside the roster, or a device no member's key signed, is a ghost:
 * an alert, and nothing is sent.
 * @throws ClientError `INVALID_DEVICE_LIST` for a ghost device (after the alert is stored).
 */
async function reconcile(ctx: Context, groupId: string, mismatches: readonly DeviceMismatch[]): Promise<void> {
  const ghost = await locked(ctx, async (tx, events) => {
    const record = await existingGroup(tx, groupId);
    const members = new Set(record.members.map((m) => m.username));
    const keyed = new Set(record.keyed);
    let problem: string | undefined;
    for (const m of mismatches) {
      if (!members.has(m.username)) {
        alert(ctx, tx, events, groupId, 'GHOST', `The server asked for a copy of a group message for ${m.username}, who is not in the group. Nothing was sent to ${m.username}.`);
        continue;
      }
      for (const id of [...m.stale, ...m.extra]) {
        tx.delete('session', sessionKey(m.username, id));
        keyed.delete(sessionKey(m.username, id));
      }
      let devices: readonly number[];
      try {
        devices = (await refreshContact(ctx, tx, m.username, events)).devices.map((d) => d.deviceId);
      } catch (error) {
        if (!isClientError(error, 'INVALID_DEVICE_LIST')) throw error;
        problem = `the server served ${m.username} a device list ${m.username}'s identity key did not sign; nothing was sent`;
        alert(ctx, tx, events, groupId, 'GHOST', `The server served a device list for ${m.username} that ${m.username}'s key did not sign. Nothing was sent.`);
        break;
      }
      const ghosts = m.missing.filter((id) => !devices.includes(id));
      if (ghosts.length > 0) {
        problem = `the server asks for copies to ${m.username}'s device ${ghosts.join(', ')}, which ${m.username}'s signed device list does not hold; nothing was sent`;
        alert(ctx, tx, events, groupId, 'GHOST', `The server asked for copies to ${m.username}'s device ${ghosts.join(', ')}, which ${m.username}'s signed device list does not hold. Nothing was sent.`);
        break;
      }
      for (const k of keyed) if (k.startsWith(`${m.username}.`) && !devices.some((id) => k === sessionKey(m.username, id))) keyed.delete(k);
    }
    saveGroup(tx, { ...record, keyed: [...keyed] });
    return problem;
  });
  if (ghost !== undefined) throw new ClientError('INVALID_DEVICE_LIST', ghost);
}

// --- Receiving --------------------------------------------------------------------

/** `username`'s `deviceId` lost its session with this device (it asked for a resend): it holds none of this device's sender keys. */
export async function forgetKeyHolder(tx: Transaction, username: string, deviceId: number): Promise<void> {
  const holder = sessionKey(username, deviceId);
  for (const [, bytes] of await tx.list('group', '')) {
    const record = parse<GroupRecord>(bytes);
    if (record.keyed.includes(holder)) saveGroup(tx, { ...record, keyed: record.keyed.filter((k) => k !== holder) });
  }
}

/** Accepts a member's sender key, sent one-to-one, if it comes from a device of the roster. */
export async function receiveSenderKey(ctx: Context, tx: Transaction, envelope: Envelope, contact: Contact, content: Extract<Content, { kind: 'sender-key' }>, events: (() => void)[]): Promise<void> {
  const groupId = toHex(content.groupId);
  const source = envelope.source;
  const record = await loadGroup(tx, groupId);
  if (record === undefined || !record.member) {
    alert(ctx, tx, events, record?.id, 'UNEXPECTED_SENDER_KEY', `${source} sent a key for a group you are not in; it was ignored.`);
    return;
  }
  const member = record.members.find((m) => m.username === source);
  if (member === undefined || member.identityKey !== contact.identityKey) {
    alert(ctx, tx, events, groupId, 'UNEXPECTED_SENDER_KEY', `${source}'s device ${envelope.sourceDevice}, which is not in the group, sent it a key; it was ignored.`);
    return;
  }
  const address = { name: source, deviceId: envelope.sourceDevice };
  let distributionId;
  try {
    distributionId = decodeSenderKeyDistributionMessage(content.distribution).distributionId;
  } catch (error) {
    if (!isProtocolError(error)) throw error;
    alert(ctx, tx, events, groupId, 'UNEXPECTED_SENDER_KEY', `${source} sent a group key that does not decode; it was ignored.`);
    return;
  }
  const bound = await groupOfSenderKey(tx, address, distributionId);
  if (bound !== undefined && bound !== groupId) {
    alert(ctx, tx, events, groupId, 'UNEXPECTED_SENDER_KEY', `${source} sent a key it already uses in another group; it was ignored.`);
    return;
  }
  await processSenderKeyDistributionMessage(senderKeyStore(tx), address, content.distribution);
  recordSenderKeyGroup(tx, address, distributionId, groupId);
}

/** What a group envelope turned out to be. */
export type GroupReceipt =
  | { readonly kind: 'stored' }
  | { readonly kind: 'refused' }
  | { readonly kind: 'undecryptable'; readonly error: unknown };

/**
 * Decrypts a sender-key envelope and stores its text in its group, after
 * checking that the key was distributed for that group by a device of a
 * current member. A duplicate is dropped quietly.
 */
export async function receiveGroupMessage(ctx: Context, tx: Transaction, envelope: Envelope, contact: Contact, events: (() => void)[]): Promise<GroupReceipt> {
  const source = envelope.source;
  const address = { name: source, deviceId: envelope.sourceDevice };
  let plaintext: Uint8Array;
  let groupId: string | undefined;
  try {
    const { distributionId } = decodeSenderKeyMessage(envelope.body);
    groupId = await groupOfSenderKey(tx, address, distributionId);
    if (groupId === undefined) return { kind: 'undecryptable', error: new ClientError('NOT_A_MEMBER', `no key from ${source}.${envelope.sourceDevice} for this message`) };
    plaintext = await groupDecrypt(ctx.provider, senderKeyStore(tx), address, envelope.body);
  } catch (error) {
    if (!isProtocolError(error)) throw error;
    if (error.code === 'DUPLICATE_MESSAGE') return { kind: 'refused' };
    return { kind: 'undecryptable', error };
  }
  let content: Content;
  try {
    content = decodeContent(plaintext);
  } catch {
    alert(ctx, tx, events, groupId, 'WRONG_CHANNEL', `A group message from ${source} was not in a format this app can read; it was dropped.`);
    return { kind: 'refused' };
  }
  if (content.kind !== 'group-text') {
    alert(ctx, tx, events, groupId, 'WRONG_CHANNEL', `${source} sent a ${content.kind} message through the group's channel, where only group messages belong; it was dropped.`);
    return { kind: 'refused' };
  }
  if (toHex(content.groupId) !== groupId) {
    alert(ctx, tx, events, groupId, 'WRONG_CHANNEL', `${source} sent a message for another group under this group's key; it was dropped.`);
    return { kind: 'refused' };
  }
  const record = await loadGroup(tx, groupId);
  const member = record?.members.find((m) => m.username === source);
  if (record === undefined || !record.member || member === undefined || member.identityKey !== contact.identityKey) {
    alert(ctx, tx, events, groupId, 'NOT_A_MEMBER', `A group message from ${source}'s device ${envelope.sourceDevice}, which is not in the group, was dropped.`);
    return { kind: 'refused' };
  }
  if (fromTheFuture(ctx, tx, groupConversation(groupId), source, content.sentAt, events)) return { kind: 'refused' };
  const message: StoredMessage = {
    conversation: groupConversation(groupId),
    direction: source === ctx.local.username ? 'outgoing' : 'incoming',
    author: source,
    authorDevice: envelope.sourceDevice,
    sentAt: content.sentAt,
    storedAt: ctx.now(),
    kind: 'text',
    body: content.body,
    status: source === ctx.local.username ? 'sent' : 'received',
  };
  const key = messageKey(message);
  if ((await tx.get('message', key)) === undefined) {
    tx.put('message', key, json(message));
    events.push(() => { ctx.events.emit('message', message); });
  }
  return { kind: 'stored' };
}

/** Alert for a group text that came one-to-one: group texts travel only under a sender key. */
export function refuseGroupTextOneToOne(ctx: Context, tx: Transaction, envelope: Envelope, content: Extract<Content, { kind: 'group-text' }>, events: (() => void)[]): void {
  alert(ctx, tx, events, toHex(content.groupId), 'WRONG_CHANNEL', `${envelope.source} sent a group message as a one-to-one message; it was dropped.`);
}
