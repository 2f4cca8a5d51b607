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
 *
 * The files: roster.ts (the signed chain and its rules), state.ts (what a
 * device stores), changes.ts (making, taking and catching up on changes),
 * messages.ts (sender keys and messages); this one holds what they share
 * (types, alerts, the lock) and what an app reads.
 */
import { fromBase64, toBase64 } from '../base64.js';
import { addNotice, contactWithDevices, refreshContact } from '../contacts.js';
import type { Context } from '../context.js';
import { ClientError } from '../errors.js';
import { Transaction } from '../store/kv.js';
import { parse } from '../store/records.js';
import type { GroupRole } from './roster.js';
import { groupConversation, loadGroup, type GroupRecord } from './state.js';

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
export function alert(ctx: Context, tx: Transaction, events: (() => void)[], groupId: string | undefined, reason: GroupAlertReason, message: string): void {
  const notice = groupId === undefined ? undefined : addNotice(ctx, tx, groupConversation(groupId), `⚠ ${message}`);
  events.push(() => {
    if (notice !== undefined) ctx.events.emit('message', notice);
    ctx.events.emit('groupAlert', { groupId, reason, message });
  });
}

export function notice(ctx: Context, tx: Transaction, events: (() => void)[], groupId: string, body: string): void {
  const stored = addNotice(ctx, tx, groupConversation(groupId), body);
  events.push(() => { ctx.events.emit('message', stored); });
}

/** Runs `task` under the client's lock in one transaction, committed when it returns; events go out after the commit. */
export async function locked<T>(ctx: Context, task: (tx: Transaction, events: (() => void)[]) => Promise<T>): Promise<T> {
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

export async function existingGroup(tx: Transaction, groupId: string): Promise<GroupRecord> {
  const record = /^[0-9a-f]{32}$/.test(groupId) ? await loadGroup(tx, groupId) : undefined;
  if (record === undefined) throw new ClientError('UNKNOWN_GROUP', `no group ${groupId} on this device`);
  return record;
}

/** The identity key this device trusts for `username`, fetched (with the device list) if it knows none. */
export async function identityOf(ctx: Context, tx: Transaction, username: string, events: (() => void)[]): Promise<Uint8Array> {
  if (username === ctx.local.username) return ctx.local.identity.publicKey;
  return fromBase64((await contactWithDevices(ctx, tx, username, events)).identityKey);
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
