/**
 * Group changes: making one (sign, apply here, deliver one-to-one to every
 * device of every member), taking one from a member, and catching up on one
 * that was lost (a device asks the sender for what follows the version it
 * holds). The rules a change must pass are roster.ts's; groups.ts has the
 * overview.
 */
import { constantTimeEqual, fromHex, toHex } from '@parley/crypto';
import type { Envelope } from '@parley/protocol';

import { fromBase64, toBase64 } from '../base64.js';
import { encodeContent, type Content } from '../content.js';
import type { Context } from '../context.js';
import { ClientError } from '../errors.js';
import { loadContact } from '../protocolStores.js';
import { send, type Recipient } from '../sender.js';
import { Transaction } from '../store/kv.js';
import { json, parse } from '../store/records.js';
import { alert, existingGroup, groupInfo, identityOf, locked, notice, type GroupEdit, type GroupInfo } from './groups.js';
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
  type Roster,
} from './roster.js';
import { loadGroup, rosterFields, rosterOf, saveGroup, type GroupRecord } from './state.js';

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

/** Logs a change applied here by its kind and version: never the group's id, title or members' names. */
function logChange(ctx: Context, kind: GroupAction['kind'], version: number, group: GroupRecord): void {
  ctx.log.info('group.changed', { kind, version, members: group.members.length, member: group.member });
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
    events.push(() => {
      logChange(ctx, 'create', created.version, created);
      ctx.events.emit('group', groupInfo(created));
    });
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
    events.push(() => {
      logChange(ctx, edit.kind, updated.version, updated);
      ctx.events.emit('group', groupInfo(updated));
    });
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

/**
 * Sends the queued resync asks and answers, each on its own: one that fails
 * stays queued for the next flush (after the next drain) without holding up
 * the others. Returns the failures, for the caller to report.
 */
export async function flushResyncs(ctx: Context): Promise<unknown[]> {
  const failures: unknown[] = [];
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
    try {
      if (content !== undefined) await send(ctx, [{ username, plaintext: encodeContent(content) }]);
      await ctx.store.write([{ ns: 'resync', key, value: undefined }]);
    } catch (error) {
      failures.push(error);
    }
  }
  return failures;
}

// --- Receiving --------------------------------------------------------------------

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
    chain: [...(record?.chain ?? []), ...fresh.map((d) => toBase64(d.bytes))],
    member: me !== undefined,
    ...(removed.length > 0 ? { distributionId: undefined, keyed: [] } : {}),
  };
  saveGroup(tx, updated);
  for (const d of fresh) notice(ctx, tx, events, groupId, describe(d.change, self));
  // A key the roster now lists for someone, unlike the one this device knows: said once, when the member joins.
  for (const member of after.members) {
    if (member.username === self || before?.members.some((m) => m.username === member.username) === true) continue;
    const known = await loadContact(tx, member.username);
    if (known !== undefined && known.identityKey !== toBase64(member.identityKey)) {
      alert(ctx, tx, events, groupId, 'KEY_MISMATCH', `The group lists an identity key for ${member.username} that is not the one you know; nothing is sent to ${member.username} until this is resolved.`);
    }
  }
  const applied = fresh.map((d) => d.change);
  events.push(() => {
    for (const change of applied) logChange(ctx, change.action.kind, change.version, updated);
    ctx.events.emit('group', groupInfo(updated));
  });
  return false;
}
