/**
 * Groups end to end: real clients and a real server process. Rosters travel
 * only between members' devices, sender keys only to the devices of current
 * members, and each misbehaving member is refused by every other device
 * (SECURITY-TESTS rows 1, 4–8; the server's own misbehaviour is in
 * malicious.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { encodeContent, isClientError, type GroupAlert, type ParleyClient } from '@parley/client';
import { fromHex } from '@parley/crypto';
import { createSenderKeyDistributionMessage, groupEncrypt, SENDER_KEY_MESSAGE_TYPE } from '@parley/protocol';

import { Cast, eventually, waitFor } from '../../../../testing/clients.js';
import { freshStorage, spawnServer, type ServerProcess, type Storage } from '../../../../testing/server.js';
import { contextOf } from '../client.js';
import { send } from '../sender.js';
import { Transaction } from '../store/kv.js';
import { createChange, encodeSignedChange, type GroupAction } from './roster.js';
import { loadGroup, rosterOf, senderKeyStore } from './state.js';

let storage: Storage;
let server: ServerProcess;
const cast = new Cast(() => server.url);

beforeAll(async () => {
  storage = await freshStorage('sqlite');
  server = await spawnServer(storage);
});

afterAll(async () => {
  await cast.close();
  await server.stop();
  await storage.drop();
});

/** A group's texts as `client` shows them, oldest first (notices prefixed with "!"). */
async function groupTexts(client: ParleyClient, groupId: string): Promise<string[]> {
  return (await client.groupConversation(groupId, 1000)).map((m) => (m.kind === 'notice' ? `!${m.body}` : m.body));
}

/** Waits until every client shows `text` in the group. */
async function allSee(clients: readonly ParleyClient[], groupId: string, text: string): Promise<void> {
  for (const c of clients) await eventually(`${c.username}.${c.deviceId} shows "${text}"`, async () => (await groupTexts(c, groupId)).includes(text));
}

async function atVersion(clients: readonly ParleyClient[], groupId: string, version: number): Promise<void> {
  for (const c of clients) {
    await eventually(`${c.username}.${c.deviceId} has version ${version}`, async () => (await c.groups()).some((g) => g.id === groupId && g.version === version));
  }
}

/** Sends a raw content one-to-one from `from` to `to`, as a misbehaving member would. */
async function sendRaw(from: ParleyClient, to: readonly string[], content: Parameters<typeof encodeContent>[0]): Promise<void> {
  await send(contextOf(from), to.map((username) => ({ username, plaintext: encodeContent(content) })));
}

/** Signs a change as `author` on the roster `author`'s device holds. */
async function changeBy(author: ParleyClient, groupId: string, action: GroupAction): Promise<Uint8Array> {
  const ctx = contextOf(author);
  const record = await loadGroup(new Transaction(ctx.store), groupId);
  return encodeSignedChange(await createChange(ctx.provider, ctx.local.identity, author.username, rosterOf(record!), action));
}

/** Encrypts `content` under `from`'s sender key `distributionId` and multicasts it to the single devices of `to`, as a modified client would. */
async function multicastAs(from: ParleyClient, distributionId: string, to: readonly ParleyClient[], content: Parameters<typeof encodeContent>[0]): Promise<void> {
  const ctx = contextOf(from);
  const tx = new Transaction(ctx.store);
  const sealed = await groupEncrypt(ctx.provider, senderKeyStore(tx), { name: from.username, deviceId: from.deviceId }, distributionId, encodeContent(content));
  await tx.commit();
  const recipients = to.map((c) => ({ username: c.username, devices: [{ deviceId: c.deviceId, registrationId: contextOf(c).local.registrationId }] }));
  expect((await ctx.transport.multicast(SENDER_KEY_MESSAGE_TYPE, sealed.serialized, recipients)).kind).toBe('sent');
}

function alerts(client: ParleyClient): GroupAlert[] {
  const seen: GroupAlert[] = [];
  client.events.on('groupAlert', (a) => seen.push(a));
  return seen;
}

describe('a group of three, one of them on two devices', () => {
  let alice: ParleyClient, bob1: ParleyClient, bob2: ParleyClient, carol: ParleyClient, dave: ParleyClient;
  let groupId: string;

  beforeAll(async () => {
    alice = await cast.person('alice');
    bob1 = await cast.person('bob');
    bob2 = await cast.linkTo(bob1);
    carol = await cast.person('carol');
    dave = await cast.person('dave');
  });

  it('the roster reaches every device of every member, and messages reach every device once, the sender\'s other devices included', async () => {
    const group = await alice.createGroup('Trip', [bob1.username, carol.username]);
    groupId = group.id;
    expect(group).toMatchObject({ title: 'Trip', version: 1, member: true });
    expect(group.members).toEqual([
      { username: alice.username, role: 'admin' },
      { username: bob1.username, role: 'member' },
      { username: carol.username, role: 'member' },
    ]);
    await atVersion([bob1, bob2, carol], groupId, 1);
    expect(await bob2.group(groupId)).toEqual(group);

    await alice.sendGroupText(groupId, 'hello all');
    await allSee([bob1, bob2, carol], groupId, 'hello all');
    const reply = await bob2.sendGroupText(groupId, 'hi from bob');
    expect(reply.status).toBe('sent');
    await allSee([alice, bob1, carol], groupId, 'hi from bob');
    await carol.sendGroupText(groupId, 'carol here');
    await allSee([alice, bob1, bob2], groupId, 'carol here');

    for (const c of [alice, bob1, bob2, carol]) {
      const shown = (await groupTexts(c, groupId)).filter((t) => !t.startsWith('!'));
      expect(shown, `${c.username}.${c.deviceId}`).toEqual(['hello all', 'hi from bob', 'carol here']);
    }
    const onBob1 = (await bob1.groupConversation(groupId)).find((m) => m.body === 'hi from bob');
    expect(onBob1).toMatchObject({ direction: 'outgoing', author: bob1.username, authorDevice: bob2.deviceId });
    expect(await dave.groups()).toEqual([]);
  });

  it('a member added later gets the whole signed history but only the current sender keys: nothing sent before', async () => {
    await alice.addGroupMember(groupId, dave.username);
    await atVersion([bob1, bob2, carol, dave], groupId, 2);
    expect((await dave.group(groupId)).members.map((m) => m.username)).toEqual([alice.username, bob1.username, carol.username, dave.username]);
    await alice.sendGroupText(groupId, 'welcome dave');
    await bob1.sendGroupText(groupId, 'hi dave');
    await allSee([dave], groupId, 'hi dave');
    await allSee([dave], groupId, 'welcome dave');
    expect((await groupTexts(dave, groupId)).filter((t) => !t.startsWith('!'))).toEqual(['welcome dave', 'hi dave']);
  });

  it('a removed member learns it, cannot send, and gets nothing sent after; the others go on under fresh sender keys', async () => {
    const carolsKey = (await loadGroup(new Transaction(contextOf(carol).store), groupId))!.distributionId!;
    await alice.removeGroupMember(groupId, carol.username);
    await atVersion([bob1, bob2, carol, dave], groupId, 3);
    expect((await carol.group(groupId)).member).toBe(false);
    expect(await groupTexts(carol, groupId)).toContain(`!${alice.username} removed you.`);
    const refused = await carol.sendGroupText(groupId, 'still here?').catch((error: unknown) => error);
    expect(isClientError(refused, 'NOT_A_MEMBER')).toBe(true);

    await alice.sendGroupText(groupId, 'after carol left');
    await bob2.sendGroupText(groupId, 'bob too');
    await allSee([bob1, bob2, dave], groupId, 'after carol left');
    await allSee([alice, bob1, dave], groupId, 'bob too');
    await carol.sync();
    expect(await groupTexts(carol, groupId)).not.toContain('after carol left');
    expect(await groupTexts(carol, groupId)).not.toContain('bob too');
    // The new key was never sent to carol: alice's distribution changed, and carol holds only the old one.
    const aliceGroup = await loadGroup(new Transaction(contextOf(alice).store), groupId);
    const carolKey = await senderKeyStore(new Transaction(contextOf(carol).store)).loadSenderKey({ name: alice.username, deviceId: 1 }, aliceGroup!.distributionId!);
    expect(carolKey).toBeUndefined();

    // Carol's client refuses to send; a modified one, under the key alice still holds from before, is refused by alice.
    const seen = alerts(alice);
    await multicastAs(carol, carolsKey, [alice], { kind: 'group-text', sentAt: Date.now(), groupId: fromHex(groupId), body: 'ghost of carol' });
    await eventually('alice alerts NOT_A_MEMBER', () => seen.some((a) => a.reason === 'NOT_A_MEMBER'));
    expect(await groupTexts(alice, groupId)).not.toContain('ghost of carol');
  });

  it('refuses a change from a non-admin, from a removed member, and a replayed old change, on every device (row 6)', async () => {
    const watched = [alice, bob1, bob2, dave];
    const seen = new Map(watched.map((c) => [c, alerts(c)]));
    const before = (await alice.group(groupId)).version;
    const replayed = [alice, dave].map((c) => waitFor(c, 'warning', (w) => /already has/.test(w.message), 'the replay ignored'));

    // A plain member signs an add of an outsider.
    const byMember = await changeBy(dave, groupId, { kind: 'add', member: { username: carol.username, identityKey: contextOf(carol).local.identity.publicKey, role: 'admin' } });
    await sendRaw(dave, [alice.username, bob1.username, dave.username], { kind: 'group-change', sentAt: Date.now(), changes: [byMember] });
    // The removed member renames the group on the roster it holds (in which it is no longer a member).
    const byRemoved = await changeBy(carol, groupId, { kind: 'title', title: 'Carol was here' });
    await sendRaw(carol, [alice.username, bob1.username, dave.username], { kind: 'group-change', sentAt: Date.now(), changes: [byRemoved] });
    // A member replays the create: the very bytes every device applied as version 1.
    const chain = (await loadGroup(new Transaction(contextOf(bob1).store), groupId))!.chain;
    const create = Uint8Array.from(atob(chain[0]!), (c) => c.charCodeAt(0));
    await sendRaw(bob1, [alice.username, dave.username], { kind: 'group-change', sentAt: Date.now(), changes: [create] });

    for (const c of watched) {
      const mine = seen.get(c)!;
      // Everyone refuses carol's change; all but dave (whose only device sent it) refuse dave's too.
      const expected = c === dave ? 1 : 2;
      await eventually(`${c.username}.${c.deviceId} refuses ${expected}`, () => mine.filter((a) => a.reason === 'REFUSED_CHANGE').length >= expected);
      expect(mine.every((a) => a.groupId === groupId)).toBe(true);
      expect((await c.group(groupId)).version).toBe(before);
      expect((await c.group(groupId)).title).toBe('Trip');
    }
    await Promise.all(replayed);
    expect(seen.get(alice)!.map((a) => a.message).join('\n')).toMatch(/NOT_ENTITLED/);
  });

  it('refuses a group message sent one-to-one, and a one-to-one message sent under a sender key (row 4)', async () => {
    const seen = alerts(alice);
    await sendRaw(bob1, [alice.username], { kind: 'group-text', sentAt: Date.now(), groupId: fromHex(groupId), body: 'sneaky one-to-one' });
    await eventually('alice alerts WRONG_CHANNEL', () => seen.some((a) => a.reason === 'WRONG_CHANNEL'));

    // bob1 encrypts a one-to-one text under his group sender key and multicasts it to alice.
    await bob1.sendGroupText(groupId, 'keys are fresh'); // makes sure alice holds bob1's current key
    await allSee([alice], groupId, 'keys are fresh');
    const record = await loadGroup(new Transaction(contextOf(bob1).store), groupId);
    await multicastAs(bob1, record!.distributionId!, [alice], { kind: 'text', sentAt: Date.now(), body: 'sneaky group' });
    await eventually('alice alerts twice WRONG_CHANNEL', () => seen.filter((a) => a.reason === 'WRONG_CHANNEL').length >= 2);
    expect((await alice.conversation(bob1.username)).map((m) => m.body)).not.toContain('sneaky group');
    expect(await groupTexts(alice, groupId)).not.toContain('sneaky one-to-one');
  });

  it('refuses a sender key from outside the roster, and for a group this device is not in (row 5)', async () => {
    const seen = alerts(alice);
    const ctx = contextOf(carol); // removed: carol's key must not be taken
    const sentAt = Date.now();
    const tx = new Transaction(ctx.store);
    const distribution = await createSenderKeyDistributionMessage(ctx.provider, senderKeyStore(tx), { name: carol.username, deviceId: 1 }, '6b1c2b0e-58a5-4cde-9e4a-1c2b3d4e5f60');
    await tx.commit();
    await sendRaw(carol, [alice.username], { kind: 'sender-key', sentAt, groupId: fromHex(groupId), distribution: distribution.serialized });
    await sendRaw(carol, [alice.username], { kind: 'sender-key', sentAt, groupId: new Uint8Array(16).fill(1), distribution: distribution.serialized });
    await eventually('alice alerts twice', () => seen.filter((a) => a.reason === 'UNEXPECTED_SENDER_KEY').length >= 2);
    const key = await senderKeyStore(new Transaction(contextOf(alice).store)).loadSenderKey({ name: carol.username, deviceId: 1 }, '6b1c2b0e-58a5-4cde-9e4a-1c2b3d4e5f60');
    expect(key).toBeUndefined();
  });

  it('admins promote and demote; a plain member cannot change the roster through the SDK; the last admin cannot leave members behind', async () => {
    const notAdmin = await dave.renameGroup(groupId, 'Dave\'s').catch((error: unknown) => error);
    expect(isClientError(notAdmin, 'GROUP_CHANGE_REFUSED')).toBe(true);
    const lastAdmin = await alice.leaveGroup(groupId).catch((error: unknown) => error);
    expect(isClientError(lastAdmin, 'GROUP_CHANGE_REFUSED')).toBe(true);
    await alice.promoteGroupMember(groupId, bob1.username);
    const version = (await alice.group(groupId)).version;
    await atVersion([bob2, dave], groupId, version);
    await bob2.renameGroup(groupId, 'Road trip');
    await atVersion([alice], groupId, version + 1); // a change builds on the newest version, or it forks
    await alice.leaveGroup(groupId);
    await atVersion([bob1, dave, alice], groupId, version + 2);
    expect((await dave.group(groupId)).title).toBe('Road trip');
    expect((await dave.group(groupId)).members).toEqual([
      { username: bob1.username, role: 'admin' },
      { username: dave.username, role: 'member' },
    ]);
    expect((await alice.group(groupId)).member).toBe(false);
    await bob1.sendGroupText(groupId, 'just us');
    await allSee([dave, bob2], groupId, 'just us');
    await alice.sync();
    expect(await groupTexts(alice, groupId)).not.toContain('just us');
  });

  it('lists members with their devices and verification state', async () => {
    const members = await bob1.groupMembers(groupId);
    expect(members).toEqual([
      { username: bob1.username, role: 'admin', devices: [1, 2], verified: true, keyMatches: true },
      { username: dave.username, role: 'member', devices: [1], verified: false, keyMatches: true },
    ]);
    await bob1.verify(dave.username);
    expect((await bob1.groupMembers(groupId))[1]!.verified).toBe(true);
  });

  it('nobody has undecryptable messages left', async () => {
    for (const c of [alice, bob1, bob2, carol, dave]) expect(await c.undecryptableCount(0), `${c.username}.${c.deviceId}`).toBe(0);
  });
});

