/**
 * Groups against a malicious server (SECURITY-TESTS rows 1, 2, 4 and 7): a
 * test double speaking the real API, with a real server process underneath,
 * that tries to slip in a ghost member or device, swaps the channel of a
 * ciphertext, replays, and hands a removed member what it should not have.
 * Every member refuses, raises an alert, and sends the ghost no key.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { isClientError, type GroupAlert, type ParleyClient } from '@parley/client';
import { fromHex } from '@parley/crypto';
import { generateIdentityKeyPair, MessageType, SENDER_KEY_MESSAGE_TYPE, type ClientFrame, type DeviceMismatch } from '@parley/protocol';

import { Cast, eventually } from '../../../../testing/clients.js';
import {
  forgedEnvelope,
  startMaliciousServer,
  type ClientFrameHook,
  type MaliciousServer,
} from '../../../../testing/maliciousServer.js';
import {
  dropEnvelopes,
  duplicateEnvelopes,
  injectDeviceIntoList,
  refuseWithMismatch,
  rewriteEnvelope,
  swapIdentityKey,
} from '../../../../testing/misbehaviours.js';
import { freshStorage, spawnServer, type ServerProcess, type Storage } from '../../../../testing/server.js';
import { contextOf } from '../client.js';
import { encodeContent } from '../content.js';
import { send } from '../sender.js';
import { Transaction } from '../store/kv.js';
import { createChange, encodeSignedChange } from './roster.js';
import { loadGroup, rosterOf } from './state.js';

let storage: Storage;
let server: ServerProcess;
let evil: MaliciousServer;
const cast = new Cast(() => evil.url);

let alice: ParleyClient, bob: ParleyClient, carol: ParleyClient, mallory: ParleyClient;
let groupId: string;
/** Every frame each account's devices sent, as the server saw it. */
const sent: { from: string; frame: ClientFrame }[] = [];

beforeAll(async () => {
  storage = await freshStorage('sqlite');
  server = await spawnServer(storage);
  evil = await startMaliciousServer(server.url);
  [alice, bob, carol, mallory] = [await cast.person('alice'), await cast.person('bob'), await cast.person('carol'), await cast.person('mallory')];
  groupId = (await alice.createGroup('Council', [bob.username, carol.username])).id;
  await eventually('bob and carol have the group', async () => (await bob.groups()).length === 1 && (await carol.groups()).length === 1);
});

afterEach(() => {
  evil.onHttpResponse(undefined);
  evil.onServerFrame(undefined);
  evil.onClientFrame(undefined);
});

afterAll(async () => {
  await cast.close();
  await evil.close();
  await server.stop();
  await storage.drop();
});

function alerts(client: ParleyClient): GroupAlert[] {
  const seen: GroupAlert[] = [];
  client.events.on('groupAlert', (a) => seen.push(a));
  return seen;
}

/** Records what clients send, then lets `hook` (if any) decide its fate. */
function recordSends(hook?: ClientFrameHook): void {
  evil.onClientFrame((frame, connection) => {
    sent.push({ from: connection.device?.username ?? '?', frame });
    return hook?.(frame, connection);
  });
}

/** Refuses `from`'s next group message (a multicast) with the given device mismatch, as if the server knew better. */
function refuseGroupSendOnce(from: string, mismatch: DeviceMismatch): ClientFrameHook {
  const refuse = refuseWithMismatch([mismatch], { from, times: 1 });
  return (frame, connection) => (frame.kind === 'multicast' ? refuse(frame, connection) : undefined);
}

/** The accounts a frame would deliver to. */
const destinationsOf = (frame: ClientFrame): string[] =>
  frame.kind === 'send' ? frame.destinations.map((d) => d.username) : frame.kind === 'multicast' ? frame.recipients.map((r) => r.username) : [];

const groupTexts = async (client: ParleyClient) => (await client.groupConversation(groupId, 1000)).filter((m) => m.kind === 'text').map((m) => m.body);

describe('a ghost member or device the server slips in', () => {
  it('a member the server names in a refusal gets no key and no copy, and every member alerts (row 1)', async () => {
    const members = [alice, bob, carol];
    const seen = new Map(members.map((c) => [c, alerts(c)]));
    sent.length = 0;
    for (const member of members) {
      // The server claims mallory is missing from the group send, once per member, then lets the send through.
      recordSends(refuseGroupSendOnce(member.username, { username: mallory.username, missing: [1], extra: [], stale: [] }));
      await member.sendGroupText(groupId, `from ${member.username}`);
    }
    for (const member of members) {
      expect(seen.get(member)!.map((a) => a.reason)).toContain('GHOST');
      for (const other of members) if (other !== member) await eventually(`${other.username} shows ${member.username}'s text`, async () => (await groupTexts(other)).includes(`from ${member.username}`));
    }
    expect(sent.filter(({ frame }) => destinationsOf(frame).includes(mallory.username))).toEqual([]);
    await mallory.sync();
    expect(await mallory.groups()).toEqual([]);
    expect(await mallory.conversations()).toEqual([]);
  });

  it('a member the server tries to add through a forged change is refused by every member, who never send it a key (rows 1 and 6)', async () => {
    // mallory holds a real account and real sessions, but no admin signed her in.
    const members = [alice, bob, carol];
    const seen = new Map(members.map((c) => [c, alerts(c)]));
    const record = (await loadGroup(new Transaction(contextOf(alice).store), groupId))!;
    const ctx = contextOf(mallory);
    const forged = await createChange(ctx.provider, ctx.local.identity, mallory.username, rosterOf(record), {
      kind: 'add',
      member: { username: mallory.username, identityKey: ctx.local.identity.publicKey, role: 'admin' },
    });
    await send(ctx, members.map((m) => ({ username: m.username, plaintext: encodeContent({ kind: 'group-change', sentAt: Date.now(), changes: [encodeSignedChange(forged)] }) })));
    for (const member of members) {
      await eventually(`${member.username} alerts`, () => seen.get(member)!.some((a) => a.reason === 'REFUSED_CHANGE'));
      expect((await member.group(groupId)).members.map((m) => m.username)).not.toContain(mallory.username);
    }
    sent.length = 0;
    recordSends();
    await alice.sendGroupText(groupId, 'still three of us');
    await eventually('bob shows it', async () => (await groupTexts(bob)).includes('still three of us'));
    expect(sent.filter(({ frame }) => destinationsOf(frame).includes(mallory.username))).toEqual([]);
  });

  it('a device injected into a member\'s list, unsigned, gets no key: the send stops with an alert (row 2)', async () => {
    const seen = alerts(alice);
    evil.onHttpResponse(injectDeviceIntoList(bob.username, { deviceId: 9 }));
    sent.length = 0;
    recordSends(refuseGroupSendOnce(alice.username, { username: bob.username, missing: [9], extra: [], stale: [] }));
    const error = await alice.sendGroupText(groupId, 'to the ghost?').catch((e: unknown) => e);
    expect(isClientError(error, 'INVALID_DEVICE_LIST')).toBe(true);
    expect(seen.map((a) => a.reason)).toContain('GHOST');
    const toDevice9 = sent.filter(({ frame }) =>
      frame.kind === 'send'
        ? frame.destinations.some((d) => d.username === bob.username && d.messages.some((m) => m.deviceId === 9))
        : frame.kind === 'multicast' && frame.recipients.some((r) => r.username === bob.username && r.devices.some((d) => d.deviceId === 9)),
    );
    expect(toDevice9).toEqual([]);
    // Served honestly again, the group goes on, to bob's one real device.
    evil.onHttpResponse(undefined);
    evil.onClientFrame(undefined);
    await alice.sendGroupText(groupId, 'honest again');
    await eventually('bob shows it', async () => (await groupTexts(bob)).includes('honest again'));
  });
});

describe('a lost roster change', () => {
  it('a member that missed a change asks for it when the next one comes, and catches up (no alert)', async () => {
    const seen = alerts(carol);
    const version = (await alice.group(groupId)).version;
    await eventually('carol is up to date', async () => (await carol.group(groupId)).version === version);
    // The server withholds alice's next message to carol for good (acked on carol's behalf): the rename is lost to her.
    let lost = 0;
    evil.onServerFrame((frame, connection) => {
      if (frame.kind !== 'envelope' || connection.device?.username !== carol.username || frame.envelope.source !== alice.username || lost > 0) return undefined;
      lost++;
      connection.toServer({ kind: 'ack', ids: [frame.envelope.id] });
      return [];
    });
    await alice.renameGroup(groupId, 'Council of three');
    await eventually('the rename was withheld from carol', () => lost === 1);
    evil.onServerFrame(undefined);
    await alice.renameGroup(groupId, 'The Council');
    await eventually('carol caught up', async () => (await carol.group(groupId)).version === version + 2);
    expect((await carol.group(groupId)).title).toBe('The Council');
    expect(seen).toEqual([]);
    expect(await carol.groupConversation(groupId, 1000).then((ms) => ms.map((m) => m.body))).toEqual(
      expect.arrayContaining([`${alice.username} renamed the group "Council of three".`, `${alice.username} renamed the group "The Council".`]),
    );
  });
});

describe('a history request from outside', () => {
  it('a non-member asking for the roster\'s history gets nothing, and the member alerts', async () => {
    const seen = alerts(alice);
    sent.length = 0;
    recordSends();
    await send(contextOf(mallory), [{ username: alice.username, plaintext: encodeContent({ kind: 'group-resync', sentAt: Date.now(), groupId: fromHex(groupId), have: 0 }) }]);
    await eventually('alice alerts', () => seen.some((a) => a.reason === 'NOT_A_MEMBER'));
    await alice.sendGroupText(groupId, 'flushing');
    expect(sent.filter(({ from, frame }) => from === alice.username && destinationsOf(frame).includes(mallory.username))).toEqual([]);
    await mallory.sync();
    expect(await mallory.groups()).toEqual([]);
  });
});

describe('a key the server swaps', () => {
  it('a member whose identity key the server swaps gets nothing: the key the roster lists is the one that counts (rows 2 and 10)', async () => {
    const seen = alerts(alice);
    evil.onHttpResponse(swapIdentityKey(bob.username, await generateIdentityKeyPair(contextOf(alice).provider)));
    await alice.refreshContact(bob.username);
    sent.length = 0;
    recordSends();
    await alice.sendGroupText(groupId, 'not for an impostor');
    await alice.sendGroupText(groupId, 'nor this');
    await eventually('carol shows both', async () => (await groupTexts(carol)).includes('nor this'));
    expect(seen.filter((a) => a.reason === 'KEY_MISMATCH')).toHaveLength(1); // once, not at every message
    expect(sent.filter(({ from, frame }) => from === alice.username && destinationsOf(frame).includes(bob.username))).toEqual([]);
    // Served honestly again, bob's real key is back and so is he.
    evil.onHttpResponse(undefined);
    evil.onClientFrame(undefined);
    await alice.refreshContact(bob.username);
    await alice.sendGroupText(groupId, 'bob is back');
    await eventually('bob shows it', async () => (await groupTexts(bob)).includes('bob is back'));
    expect(await groupTexts(bob)).not.toContain('not for an impostor');
  });
});

describe('ciphertexts out of place', () => {
  it('a group ciphertext delivered as a one-to-one message, and a one-to-one one delivered as a group message, are never taken in the wrong channel (row 4)', async () => {
    evil.onServerFrame(
      rewriteEnvelope(
        (e, connection) => connection.device?.username === bob.username && e.source === alice.username && e.type !== MessageType.PreKey,
        (e) => ({ ...e, type: e.type === SENDER_KEY_MESSAGE_TYPE ? MessageType.Whisper : SENDER_KEY_MESSAGE_TYPE }),
      ),
    );
    await alice.sendGroupText(groupId, 'group, posing as one-to-one');
    await alice.sendText(bob.username, 'one-to-one, posing as group');
    await eventually('carol shows the group text', async () => (await groupTexts(carol)).includes('group, posing as one-to-one'));
    await eventually('bob counted the group text as undecryptable', async () => (await bob.undecryptableCount(0)) >= 1);
    evil.onServerFrame(undefined);
    // bob asked alice again: the one-to-one text comes back as one (alice resends it in a fresh session), the group text cannot.
    await eventually('bob shows the one-to-one text, resent', async () => (await bob.conversation(alice.username)).some((m) => m.body === 'one-to-one, posing as group'));
    expect(await groupTexts(bob)).not.toContain('group, posing as one-to-one');
    expect(await groupTexts(bob)).not.toContain('one-to-one, posing as group');
    expect((await bob.conversation(alice.username)).map((m) => m.body)).not.toContain('group, posing as one-to-one');
    // alice's next group message carries her key to bob again, so he reads on.
    await alice.sendGroupText(groupId, 'delivered as it was sent');
    await eventually('bob shows the next group text', async () => (await groupTexts(bob)).includes('delivered as it was sent'));
  });

  it('a device that lost a member\'s sender key asks again, and gets the key with the member\'s next message', async () => {
    // A removal makes every key stale, so bob's next message carries a fresh one: the server drops carol's copy of it.
    const erin = await cast.person('erin');
    await alice.addGroupMember(groupId, erin.username);
    await alice.removeGroupMember(groupId, erin.username);
    await eventually('bob has the removal', async () => (await bob.group(groupId)).version === (await alice.group(groupId)).version);
    evil.onServerFrame(dropEnvelopes((e, connection) => connection.device?.username === carol.username && e.source === bob.username && e.type !== SENDER_KEY_MESSAGE_TYPE));
    await bob.sendGroupText(groupId, 'carol misses my key');
    await eventually('alice shows it', async () => (await groupTexts(alice)).includes('carol misses my key'));
    await eventually('carol counted it undecryptable', async () => (await carol.undecryptableCount(0)) >= 1);
    evil.onServerFrame(undefined);
    await eventually('bob learnt carol lacks his key', async () => !(await loadGroup(new Transaction(contextOf(bob).store), groupId))!.keyed.some((k) => k.startsWith(`${carol.username}.`)));
    await bob.sendGroupText(groupId, 'now with my key');
    await eventually('carol shows the next one', async () => (await groupTexts(carol)).includes('now with my key'));
  });

  it('a group message delivered twice is shown once (row 7)', async () => {
    evil.onServerFrame(duplicateEnvelopes((e) => e.type === SENDER_KEY_MESSAGE_TYPE));
    await bob.sendGroupText(groupId, 'said once');
    await eventually('carol shows it', async () => (await groupTexts(carol)).includes('said once'));
    await alice.sync();
    await carol.sync();
    for (const c of [alice, carol]) expect((await groupTexts(c)).filter((t) => t === 'said once')).toHaveLength(1);
  });

  it('a member added later, handed an earlier group message by the server, cannot decrypt it', async () => {
    let captured: Uint8Array | undefined;
    evil.onClientFrame((frame) => {
      if (frame.kind === 'multicast' && frame.type === SENDER_KEY_MESSAGE_TYPE) captured = frame.body;
    });
    await alice.sendGroupText(groupId, 'before dave');
    evil.onClientFrame(undefined);
    const dave = await cast.person('dave');
    await alice.addGroupMember(groupId, dave.username);
    await alice.sendGroupText(groupId, 'welcome dave');
    await eventually('dave shows the welcome', async () => (await groupTexts(dave)).includes('welcome dave'));
    // dave holds alice's key from its current iteration on: the earlier message is behind it.
    evil.inject({ username: dave.username, deviceId: 1 }, forgedEnvelope({ source: alice.username, sourceDevice: 1, type: SENDER_KEY_MESSAGE_TYPE, body: captured! }));
    await alice.sendGroupText(groupId, 'after the replay');
    await eventually('dave shows the next one', async () => (await groupTexts(dave)).includes('after the replay'));
    expect(await groupTexts(dave)).toEqual(['welcome dave', 'after the replay']);
  });

  it('a removed member handed a later group message by the server cannot decrypt it', async () => {
    await alice.removeGroupMember(groupId, carol.username);
    await eventually('carol learns it', async () => !(await carol.group(groupId)).member);
    let captured: Uint8Array | undefined;
    evil.onClientFrame((frame) => {
      if (frame.kind === 'multicast' && frame.type === SENDER_KEY_MESSAGE_TYPE) captured = frame.body;
    });
    await alice.sendGroupText(groupId, 'not for carol');
    expect(captured).toBeDefined();
    const failures = await carol.undecryptableCount(0);
    evil.inject({ username: carol.username, deviceId: 1 }, forgedEnvelope({ source: alice.username, sourceDevice: 1, type: SENDER_KEY_MESSAGE_TYPE, body: captured! }));
    await eventually('carol fails to decrypt it', async () => (await carol.undecryptableCount(0)) > failures);
    expect(await groupTexts(carol)).not.toContain('not for carol');
  });
});
