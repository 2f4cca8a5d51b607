/**
 * Groups with no ghost members. Each device keeps every group's roster itself
 * (roster.ts: a hash chain of changes signed by members' identity keys) and
 * never takes one from the server, which stores no membership at all.
 *
 *   change     an admin signs it, applies it here, then sends it in one-to-one
 *              sessions to every device of every member (the whole chain to a
 *              new member, and the change to a removed one)
 *   sender key each device has one per group (libsignal's sender keys); before
 *              a message it sends its key, one-to-one, to every device of the
 *              members that lacks it. The devices come from device lists the
 *              members' roster-listed identity keys signed, never from the server
 *   message    encrypted once with the sender key and handed to the server
 *              with the list of devices (multicast), stored once per mailbox
 *   removal    makes this device's sender key stale: the next message goes out
 *              under a fresh key, distributed to the remaining devices only
 *   catch-up   a device that missed a change asks its sender for what follows
 *              the version it holds (group_resync); a device that cannot decrypt
 *              a group message tells its author, who sends its key again
 *
 * What the receiving side refuses, with an alert (the `groupAlert` event and a
 * notice in the group): a change that does not apply (not entitled, replayed
 * with different content, forked, badly signed), a sender key from someone
 * outside the roster, a group message from outside it, a group message that
 * arrives as a one-to-one message or the reverse, and a server that asks for
 * copies to accounts or devices no member's key signed.
 */
import { constantTimeEqual } from '@parley/crypto';
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

import { fromBase64, toBase64 } from '../base64.js';
import { decodeContent, encodeContent, type Content } from '../content.js';
import { addNotice, contactWithDevices, refreshContact } from '../contacts.js';
import type { Context } from '../context.js';
import { ClientError, isClientError } from '../errors.js';
import { loadContact } from '../protocolStores.js';
import { send, type Recipient } from '../sender.js';
import { Transaction } from '../store/kv.js';
import { json, messageKey, outgoingText, parse, sessionKey, type Contact, type StoredMessage } from '../store/records.js';
import {
  applyChange,
  createChange,
  decodeChange,
  decodeSignedChange,
  encodeSignedChange,
  isRosterError,
  MAX_GROUP_MEMBERS,
  type GroupAction,
  type GroupChange,
  type GroupMember,
  type GroupRole,
  type Roster,
} from './roster.js';
import {
  fromHex,
  groupConversation,
  groupOfSenderKey,
  loadGroup,
  newDistributionId,
  recordSenderKeyGroup,
  rosterFields,
  rosterOf,
  saveGroup,
  senderKeyStore,
  toHex,
  type GroupRecord,
} from './state.js';

/** A group as an app shows it. */
export interface GroupInfo {
  /** 32 hex digits. */
  readonly id: string;
  /** The conversation its messages are stored under. */
  readonly conversation: string;
  readonly title: string;
  readonly version: number;
  /** This account is in the group. */
  readonly member: boolean;
  readonly members: readonly { readonly username: string; readonly role: GroupRole }[];
}

/** A change to make to a group; an added member joins with the identity key this device knows for them. */
export type GroupEdit =
  | { readonly kind: 'add' | 'remove' | 'promote' | 'demote'; readonly username: string }
  | { readonly kind: 'title'; readonly title: string }
  | { readonly kind: 'leave' };

/** Why a client raised a group alert: each is something a correct server and correct members never cause. */
export type GroupAlertReason =
  /** A roster change that does not apply: unsigned by anyone entitled, out of order, forked. */
  | 'REFUSED_CHANGE'
  /** A sender key from a device of no member, or for a group this device is not in. */
  | 'UNEXPECTED_SENDER_KEY'
  /** A group message (or a request for the roster's history) from outside the roster, or a message under a key not distributed for its group. */
  | 'NOT_A_MEMBER'
  /** A group message as a one-to-one message, or the reverse. */
  | 'WRONG_CHANNEL'
  /** The roster lists a key for an account that is not the key this device knows for it. */
  | 'KEY_MISMATCH'
  /** The server asked for copies to an account that is not a member, or a device no member signed. */
  | 'GHOST';

export interface GroupAlert {
  readonly groupId: string | undefined;
  readonly reason: GroupAlertReason;
  readonly message: string;
}

/** Group sends refused for a changing device set, in a row, before giving up. */
const MAX_MISMATCH_RETRIES = 3;

const randomDistributionId = (ctx: Context) => newDistributionId(ctx.provider.randomBytes(16));

export function groupInfo(record: GroupRecord): GroupInfo {
  return {
    id: record.id,
    conversation: groupConversation(record.id),
    title: record.title,
    version: record.version,
    member: record.member,
    members: record.members.map((m) => ({ username: m.username, role: m.role })),
  };
}

/** Raises an alert after the commit, with a notice in the group when there is one. */
function alert(ctx: Context, tx: Transaction, events: (() => void)[], groupId: string | undefined, reason: GroupAlertReason, message: string): void {
  const notice = groupId === undefined ? undefined : addNotice(ctx, tx, groupConversation(groupId), `⚠ ${message}`);
  events.push(() => {
    if (notice !== undefined) ctx.events.emit('message', notice);
    ctx.events.emit('groupAlert', { groupId, reason, message });
  });
}

function notice(ctx: Context, tx: Transaction, events: (() => void)[], groupId: string, body: string): void {
  const stored = addNotice(ctx, tx, groupConversation(groupId), body);
  events.push(() => { ctx.events.emit('message', stored); });
}

/** Runs `task` under the client's lock in one transaction, committed when it returns; events go out after the commit. */
async function locked<T>(ctx: Context, task: (tx: Transaction, events: (() => void)[]) => Promise<T>): Promise<T> {
  const events: (() => void)[] = [];
  const result = await ctx.exclusive(async () => {
    const tx = new Transaction(ctx.store);
    const value = await task(tx, events);
    await tx.commit();
    return value;
  });
  for (const emit of events) emit();
  return result;
}

async function existingGroup(tx: Transaction, groupId: string): Promise<GroupRecord> {
  const record = /^[0-9a-f]{32}$/.test(groupId) ? await loadGroup(tx, groupId) : undefined;
  if (record === undefined) throw new ClientError('UNKNOWN_GROUP', `no group ${groupId} on this device`);
  return record;
}

/** The identity key this device trusts for `username`, fetched (with the device list) if it knows none. */
async function identityOf(ctx: Context, tx: Transaction, username: string, events: (() => void)[]): Promise<Uint8Array> {
  if (username === ctx.local.username) return ctx.local.identity.publicKey;
  return fromBase64((await contactWithDevices(ctx, tx, username, events)).identityKey);
}

/** What one change did, in words, for the group's conversation. */
function describe(change: GroupChange, self: string): string {
  const who = (name: string) => (name === self ? 'you' : name);
  const author = change.author === self ? 'You' : change.author;
  const { action } = change;
  switch (action.kind) {
    case 'create':
      return `${author} created the group "${action.title}" with ${action.members.map((m) => who(m.username)).join(', ')}.`;
    case 'add':
      return `${author} added ${who(action.member.username)}.`;
    case 'remove':
      return `${author} removed ${who(action.username)}.`;
    case 'promote':
      return `${author} made ${who(action.username)} an admin.`;
    case 'demote':
      return `${author} made ${who(action.username)} a plain member.`;
    case 'title':
      return `${author} renamed the group "${action.title}".`;
    case 'leave':
      return `${author} left.`;
  }
}

// --- Changes --------------------------------------------------------------------

/**
 * Creates a group with this account as its admin and `usernames` as members,
 * and tells every member. @throws ClientError `INVALID_ARGUMENT`, `UNKNOWN_USER`, and what sending throws.
 */
export async function createGroup(ctx: Context, title: string, usernames: readonly string[]): Promise<GroupInfo> {
  const self = ctx.local.username;
  const others = [...new Set(usernames)].filter((u) => u !== self);
  if (others.length + 1 > MAX_GROUP_MEMBERS) throw new ClientError('INVALID_ARGUMENT', `a group has at most ${MAX_GROUP_MEMBERS} members`);
  const record = await locked(ctx, async (tx, events) => {
    const members: GroupMember[] = [{ username: self, identityKey: ctx.local.identity.publicKey, role: 'admin' }];
    for (const username of others) members.push({ username, identityKey: await identityOf(ctx, tx, username, events), role: 'member' });
    const signed = await sign(ctx, undefined, { kind: 'create', title, members });
    const roster = await applyOwn(ctx, undefined, signed);
    const created: GroupRecord = {
      ...rosterFields(roster),
      chain: [toBase64(encodeSignedChange(signed))],
      member: true,
      keyed: [],
      undelivered: { from: 1, newcomers: others, alsoTo: [] },
    };
    saveGroup(tx, created);
    notice(ctx, tx, events, created.id, describe(decodeChange(signed.change), self));
    return created;
  });
  await deliverChanges(ctx, record.id);
  return groupInfo(record);
}

/** Signs `action` as this account. @throws ClientError `INVALID_ARGUMENT` for values out of range. */
async function sign(ctx: Context, roster: Roster | undefined, action: GroupAction) {
  try {
    return await createChange(ctx.provider, ctx.local.identity, ctx.local.username, roster, action);
  } catch (error) {
    if (error instanceof RangeError || error instanceof TypeError) throw new ClientError('INVALID_ARGUMENT', error.message, { cause: error });
    throw error;
  }
}

/** Applies a change this account made, as every member will. @throws ClientError `GROUP_CHANGE_REFUSED`. */
async function applyOwn(ctx: Context, roster: Roster | undefined, signed: Parameters<typeof applyChange>[2]): Promise<Roster> {
  try {
    return await applyChange(ctx.provider, roster, signed);
  } catch (error) {
    if (isRosterError(error)) throw new ClientError('GROUP_CHANGE_REFUSED', error.message, { cause: error });
    throw error;
  }
}

/**
 * Makes one change to a group (add, remove, promote, demote, title, leave),
 * applies it here, and tells every member (and a removed one).
 * @throws ClientError `UNKNOWN_GROUP`, `NOT_A_MEMBER`, `GROUP_CHANGE_REFUSED` (not an admin, not a member, the last admin…).
 */
export async function changeGroup(ctx: Context, groupId: string, edit: GroupEdit): Promise<GroupInfo> {
  const self = ctx.local.username;
  await deliverChanges(ctx, groupId); // anything earlier first, so that members get changes in order
  const record = await locked(ctx, async (tx, events) => {
    const current = await existingGroup(tx, groupId);
    if (!current.member) throw new ClientError('NOT_A_MEMBER', 'you are no longer in this group');
    const roster = rosterOf(current);
    const action: GroupAction =
      edit.kind === 'add'
        ? { kind: 'add', member: { username: edit.username, identityKey: await identityOf(ctx, tx, edit.username, events), role: 'member' } }
        : edit.kind === 'title' || edit.kind === 'leave'
          ? edit
          : { kind: edit.kind, username: edit.username };
    const signed = await sign(ctx, roster, action);
    const next = await applyOwn(ctx, roster, signed);
    const before = new Set(roster.members.map((m) => m.username));
    const after = new Set(next.members.map((m) => m.username));
    const removed = [...before].filter((u) => !after.has(u));
    const added = [...after].filter((u) => !before.has(u));
    const pending = current.undelivered;
    const updated: GroupRecord = {
      ...current,
      ...rosterFields(next),
      chain: [...current.chain, toBase64(encodeSignedChange(signed))],
      member: after.has(self),
      // A removal makes this device's sender key stale: the next message goes under a fresh one.
      ...(removed.length > 0 ? { distributionId: undefined, keyed: [] } : {}),
      undelivered: {
        from: pending?.from ?? next.version,
        newcomers: [...new Set([...(pending?.newcomers ?? []), ...added])],
        alsoTo: [...new Set([...(pending?.alsoTo ?? []), ...removed])].filter((u) => u !== self),
      },
    };
    saveGroup(tx, updated);
    notice(ctx, tx, events, groupId, describe(decodeChange(signed.change), self));
    events.push(() => { ctx.events.emit('group', groupInfo(updated)); });
    return updated;
  });
  await deliverChanges(ctx, groupId);
  return groupInfo(record);
}

/**
 * Sends the changes made here and not yet delivered. Safe to call again: a
 * member that has a change already ignores it.
 */
export async function deliverChanges(ctx: Context, groupId: string): Promise<void> {
  const record = await loadGroup(new Transaction(ctx.store), groupId);
  const pending = record?.undelivered;
  if (record === undefined || pending === undefined) return;
  const chain = record.chain.map(fromBase64);
  const recent = chain.slice(pending.from - 1);
  const sentAt = ctx.now();
  const plaintexts = new Map<string, Content>();
  // Members, those removed since (to learn it), and this account's other devices even after it left.
  for (const username of [...record.members.map((m) => m.username), ...pending.alsoTo, ctx.local.username]) {
    if (!plaintexts.has(username)) plaintexts.set(username, { kind: 'group-change', sentAt, changes: pending.newcomers.includes(username) ? chain : recent });
  }
  const recipients: Recipient[] = [...plaintexts].map(([username, content]) => ({ username, plaintext: encodeContent(content) }));
  await send(ctx, recipients);
  await locked(ctx, async (tx) => {
    const latest = await loadGroup(tx, groupId);
    // Delivered up to the version read above; a change made meanwhile stays pending.
    if (latest?.undelivered !== undefined && latest.version === record.version) saveGroup(tx, { ...latest, undelivered: undefined });
  });
}

// --- Messages -------------------------------------------------------------------

interface Plan {
  readonly distributionId: string;
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
  return { distributionId, recipients, needKey };
}

/**
 * Sends a text to a group: this device's sender key first to every member
 * device that lacks it, then the text, encrypted once, to all of them.
 * Resolves with the stored message once the server has every copy.
 * @throws ClientError `UNKNOWN_GROUP`, `NOT_A_MEMBER`, `INVALID_DEVICE_LIST` (a ghost device), `SEND_REFUSED`, and what sending throws.
 */
export async function sendGroupText(ctx: Context, groupId: string, body: string, sentAt: number): Promise<StoredMessage> {
  const id = fromHex(groupId);
  const plaintext = encodeContent({ kind: 'group-text', sentAt, groupId: id, body });
  await deliverChanges(ctx, groupId);
  const local = ctx.local;
  const message = outgoingText(local, groupConversation(groupId), body, sentAt);
  await locked(ctx, async (tx, events) => {
    const record = await existingGroup(tx, groupId);
    if (!record.member) throw new ClientError('NOT_A_MEMBER', 'you are no longer in this group');
    tx.put('message', messageKey(message), json(message));
    events.push(() => { ctx.events.emit('message', message); });
  });

  for (let attempt = 0; ; attempt++) {
    const { distributionId, recipients, needKey } = await locked(ctx, async (tx, events) => plan(ctx, tx, events, await existingGroup(tx, groupId)));
    if (needKey.length > 0) await distributeSenderKey(ctx, groupId, distributionId, needKey);
    if (recipients.length === 0) break; // alone in the group, on one device
    const ciphertext = await locked(ctx, async (tx) => {
      const sealed = await groupEncrypt(ctx.provider, senderKeyStore(tx), { name: local.username, deviceId: local.deviceId }, distributionId, plaintext);
      return sealed.serialized;
    });
    const answer = await multicast(ctx, ciphertext, recipients);
    if (answer.kind === 'sent') break;
    if (answer.code !== 'DEVICE_MISMATCH' || attempt >= MAX_MISMATCH_RETRIES) {
      throw new ClientError('SEND_REFUSED', `the server refused the group message (${answer.code}): ${answer.message}`, { serverCode: answer.code });
    }
    await reconcile(ctx, groupId, answer.mismatches);
  }

  const sent = { ...message, status: 'sent' as const };
  await locked(ctx, async (tx, events) => {
    tx.put('message', messageKey(sent), json(sent));
    events.push(() => { ctx.events.emit('status', sent); });
  });
  return sent;
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
  const content: Content = { kind: 'sender-key', sentAt: ctx.now(), groupId: fromHex(groupId), distribution };
  await send(ctx, usernames.map((username) => ({ username, plaintext: encodeContent(content) })));
  await locked(ctx, async (tx) => {
    const record = await existingGroup(tx, groupId);
    if (record.distributionId !== distributionId) return; // a removal made it stale meanwhile
    const keyed = new Set(record.keyed);
    for (const username of usernames) {
      const contact = await contactWithDevices(ctx, tx, username, []);
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

// --- Catching up ------------------------------------------------------------------

/**
 * Resyncs to send once the envelope that asked for them is stored: an `ask`
 * for the changes after `have`, or an `answer` with them. One per group and
 * account (a newer one replaces an older).
 *
 *   namespace  key                                   value
 *   resync     ask|answer.<group id>.<username>      { have } (JSON)
 */
function queueResync(tx: Transaction, kind: 'ask' | 'answer', groupId: string, username: string, have: number): void {
  tx.put('resync', `${kind}.${groupId}.${username}`, json({ have }));
}

/** A member asks for the changes after the version it holds: answered if it is a member here too. */
export async function receiveResync(ctx: Context, tx: Transaction, envelope: Envelope, content: Extract<Content, { kind: 'group-resync' }>, events: (() => void)[]): Promise<boolean> {
  const groupId = toHex(content.groupId);
  const record = await loadGroup(tx, groupId);
  if (record === undefined || !record.member || !record.members.some((m) => m.username === envelope.source)) {
    alert(ctx, tx, events, record?.id, 'NOT_A_MEMBER', `${envelope.source}, who is not in the group, asked for its history; nothing was sent.`);
    return false;
  }
  if (content.have >= record.version) return false;
  queueResync(tx, 'answer', groupId, envelope.source, content.have);
  return true;
}

/** Sends the queued resync asks and answers. */
export async function flushResyncs(ctx: Context): Promise<void> {
  for (const [key, bytes] of await ctx.store.list('resync', '')) {
    const [kind, groupId, username] = key.split('.') as ['ask' | 'answer', string, string];
    const { have } = parse<{ have: number }>(bytes);
    const sentAt = ctx.now();
    let content: Content | undefined = { kind: 'group-resync', sentAt, groupId: fromHex(groupId), have };
    if (kind === 'answer') {
      const record = await loadGroup(new Transaction(ctx.store), groupId);
      const stillMember = record?.member === true && record.members.some((m) => m.username === username);
      content = stillMember && have < record.version ? { kind: 'group-change', sentAt, changes: record.chain.slice(have).map(fromBase64) } : undefined;
    }
    if (content !== undefined) await send(ctx, [{ username, plaintext: encodeContent(content) }]);
    await ctx.store.write([{ ns: 'resync', key, value: undefined }]);
  }
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

/**
 * Applies the roster changes a member sent (one-to-one). Changes this device
 * has already are skipped when identical; all the others must apply in order,
 * or none does. Changes that start past the next version mean one was lost:
 * the sender is asked for what follows (returns true: a resync is queued).
 */
export async function receiveGroupChanges(ctx: Context, tx: Transaction, envelope: Envelope, changes: readonly Uint8Array[], events: (() => void)[]): Promise<boolean> {
  const self = ctx.local.username;
  const source = envelope.source;
  let decoded;
  try {
    decoded = changes.map((bytes) => {
      const signed = decodeSignedChange(bytes);
      return { bytes, signed, change: decodeChange(signed.change) };
    });
  } catch (error) {
    if (!isRosterError(error)) throw error;
    alert(ctx, tx, events, undefined, 'REFUSED_CHANGE', `${source} sent a group change that does not decode; it was ignored.`);
    return false;
  }
  const groupId = toHex(decoded[0]!.change.groupId);
  if (decoded.some((d) => toHex(d.change.groupId) !== groupId)) {
    alert(ctx, tx, events, undefined, 'REFUSED_CHANGE', `${source} sent changes of several groups in one message; they were ignored.`);
    return false;
  }
  const record = await loadGroup(tx, groupId);
  const before = record === undefined ? undefined : rosterOf(record);
  const fresh = [];
  for (const d of decoded) {
    if (before === undefined || d.change.version > before.version) {
      fresh.push(d);
      continue;
    }
    const known = fromBase64(record!.chain[d.change.version - 1]!);
    if (!constantTimeEqual(known, d.bytes)) {
      alert(ctx, tx, events, groupId, 'REFUSED_CHANGE', `${source} sent a version ${d.change.version} of the group that differs from the one you have (a fork); it was ignored.`);
      return false;
    }
  }
  if (fresh.length === 0) {
    // Every change is one this device applied: a replay, or a resend after a failure. Nothing moves.
    events.push(() => { ctx.events.emit('warning', { message: `${source} sent group changes this device already has (up to version ${before?.version ?? 0}); ignored` }); });
    return false;
  }
  const have = before?.version ?? 0;
  if (fresh[0]!.change.version > have + 1) {
    // A gap: a change did not reach this device (its message was lost). Ask the sender for what follows `have`.
    queueResync(tx, 'ask', groupId, source, have);
    events.push(() => { ctx.events.emit('warning', { message: `missed changes of a group after version ${have}; asking ${source} for them` }); });
    return true;
  }

  let roster = before;
  try {
    for (const d of fresh) roster = await applyChange(ctx.provider, roster, d.signed);
  } catch (error) {
    if (!isRosterError(error)) throw error;
    alert(ctx, tx, events, record === undefined ? undefined : groupId, 'REFUSED_CHANGE', `A group change sent by ${source} was refused (${error.code}): ${error.message}.`);
    return false;
  }
  const after = roster!;
  const wasMember = before?.members.some((m) => m.username === source) ?? false;
  const isMember = after.members.some((m) => m.username === source);
  if (!wasMember && !isMember) {
    alert(ctx, tx, events, record === undefined ? undefined : groupId, 'REFUSED_CHANGE', `${source}, who is not in the group, sent it a change; it was ignored.`);
    return false;
  }
  const me = after.members.find((m) => m.username === self);
  if (record === undefined && me === undefined) {
    events.push(() => { ctx.events.emit('warning', { message: `${source} sent the history of a group this account is not in; ignored` }); });
    return false;
  }
  if (me !== undefined && !constantTimeEqual(me.identityKey, ctx.local.identity.publicKey)) {
    alert(ctx, tx, events, record === undefined ? undefined : groupId, 'KEY_MISMATCH', `The group lists another identity key for you: someone added an impostor. Nothing is sent to that key.`);
    if (record === undefined) return false;
  }

  const removed = (before?.members ?? []).filter((m) => !after.members.some((n) => n.username === m.username));
  const updated: GroupRecord = {
    ...(record ?? { chain: [], keyed: [] }),
    ...rosterFields(after),
    chain: [...(record?.chain ?? []).slice(0, before?.version ?? 0), ...fresh.map((d) => toBase64(d.bytes))],
    member: me !== undefined,
    ...(removed.length > 0 ? { distributionId: undefined, keyed: [] } : {}),
  };
  saveGroup(tx, updated);
  for (const d of fresh) notice(ctx, tx, events, groupId, describe(d.change, self));
  for (const member of after.members) {
    if (member.username === self) continue;
    const known = await loadContact(tx, member.username);
    if (known !== undefined && known.identityKey !== toBase64(member.identityKey)) {
      alert(ctx, tx, events, groupId, 'KEY_MISMATCH', `The group lists an identity key for ${member.username} that is not the one you know; nothing is sent to ${member.username} until this is resolved.`);
    }
  }
  events.push(() => { ctx.events.emit('group', groupInfo(updated)); });
  return false;
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

// --- Reading ---------------------------------------------------------------------

export async function listGroups(ctx: Context): Promise<GroupInfo[]> {
  const groups = await ctx.store.list('group', '');
  return groups.map(([, bytes]) => groupInfo(parse<GroupRecord>(bytes)));
}

export async function getGroup(ctx: Context, groupId: string): Promise<GroupInfo> {
  return groupInfo(await existingGroup(new Transaction(ctx.store), groupId));
}

/** A member with the devices their roster-listed key signed, and whether this user verified them. */
export interface GroupMemberDetails {
  readonly username: string;
  readonly role: GroupRole;
  readonly devices: readonly number[];
  readonly verified: boolean;
  /** The roster's key for them is the key this device knows (false: a warning sign). */
  readonly keyMatches: boolean;
}

/** Every member's devices (fetched fresh) and verification state. */
export async function groupMembers(ctx: Context, groupId: string): Promise<GroupMemberDetails[]> {
  return locked(ctx, async (tx, events) => {
    const record = await existingGroup(tx, groupId);
    const out: GroupMemberDetails[] = [];
    for (const m of record.members) {
      const self = m.username === ctx.local.username;
      const contact = await refreshContact(ctx, tx, m.username, events);
      const key = self ? toBase64(ctx.local.identity.publicKey) : contact.identityKey;
      out.push({ username: m.username, role: m.role, devices: contact.devices.map((d) => d.deviceId), verified: self || contact.verified, keyMatches: key === m.identityKey });
    }
    return out;
  });
}

