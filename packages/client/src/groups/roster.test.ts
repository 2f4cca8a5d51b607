/**
 * The group roster: every action applied in sequence; one named test per
 * refusal (non-admin, removed member, replay, fork, another group, flipped
 * signature bits, a key the roster does not list for the author); the
 * last-admin rule; inputs never mutated; codec round-trips; and fast-check:
 * random valid sequences by random admins always apply, and any single-bit
 * mutation of a signed change is refused with a typed error.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';

import { createNodeProvider } from '@parley/crypto/node';
import { xeddsaSign } from '@parley/crypto';
import {
  generateIdentityKeyPair,
  signAuthChallenge,
  signDeviceList,
  verifyAuthChallenge,
  verifyDeviceList,
  verifyPreKeySignature,
  type IdentityKeyPair,
} from '@parley/protocol';

import { asyncOutcome } from '../../../../testing/fuzz.js';

import {
  applyChange,
  createChange,
  decodeChange,
  decodeSignedChange,
  encodeChange,
  encodeSignedChange,
  isRosterError,
  MAX_GROUP_MEMBERS,
  RosterError,
  type GroupAction,
  type GroupMember,
  type Roster,
  type RosterErrorCode,
  type SignedGroupChange,
} from './roster.js';

const provider = createNodeProvider();
const NAMES = ['alice', 'bob', 'carol', 'dave', 'erin'] as const;
type Name = (typeof NAMES)[number];
const ids = {} as Record<Name, IdentityKeyPair>;

beforeAll(async () => {
  for (const name of NAMES) ids[name] = await generateIdentityKeyPair(provider);
});

const member = (name: Name, role: GroupMember['role'] = 'member'): GroupMember => ({
  username: name,
  identityKey: ids[name].publicKey,
  role,
});

const sign = (author: Name, roster: Roster | undefined, action: GroupAction) =>
  createChange(provider, ids[author], author, roster, action);
const step = async (author: Name, roster: Roster | undefined, action: GroupAction) =>
  applyChange(provider, roster, await sign(author, roster, action));

async function refused(promise: Promise<unknown>, code: RosterErrorCode): Promise<void> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isRosterError(error) ? error.code : error).toBe(code);
}

/** alice (admin) with bob and carol (members). */
const makeGroup = () =>
  step('alice', undefined, { kind: 'create', title: 'Trip', members: [member('alice', 'admin'), member('bob'), member('carol')] });

const roles = (roster: Roster) => Object.fromEntries(roster.members.map((m) => [m.username, m.role]));

describe('applyChange', () => {
  it('applies every action in sequence', async () => {
    let roster = await makeGroup();
    expect(roster.version).toBe(1);
    expect(roster.id).toHaveLength(16);
    expect(roster.hash).toHaveLength(32);
    expect(roles(roster)).toEqual({ alice: 'admin', bob: 'member', carol: 'member' });
    roster = await step('alice', roster, { kind: 'add', member: member('dave') });
    expect(roles(roster)).toEqual({ alice: 'admin', bob: 'member', carol: 'member', dave: 'member' });
    roster = await step('alice', roster, { kind: 'promote', username: 'bob' });
    expect(roles(roster)['bob']).toBe('admin');
    roster = await step('bob', roster, { kind: 'remove', username: 'carol' });
    expect(roles(roster)['carol']).toBeUndefined();
    roster = await step('bob', roster, { kind: 'demote', username: 'alice' });
    expect(roles(roster)['alice']).toBe('member');
    roster = await step('bob', roster, { kind: 'title', title: 'Trip 2027 ✈' });
    expect(roster.title).toBe('Trip 2027 ✈');
    roster = await step('dave', roster, { kind: 'leave' });
    expect(roles(roster)).toEqual({ alice: 'member', bob: 'admin' });
    expect(roster.version).toBe(7);
  });

  it('chains each version to the hash of the change that produced it', async () => {
    const first = await makeGroup();
    const signed = await sign('alice', first, { kind: 'add', member: member('dave') });
    const second = await applyChange(provider, first, signed);
    expect(second.hash).toEqual(await provider.sha256(signed.change));
    expect(decodeChange(signed.change).previousHash).toEqual(first.hash);
  });

  it('refuses a change by a non-admin', async () => {
    const roster = await makeGroup();
    await refused(step('bob', roster, { kind: 'add', member: member('dave') }), 'NOT_ENTITLED');
    await refused(step('bob', roster, { kind: 'title', title: 'Mine' }), 'NOT_ENTITLED');
    await refused(step('bob', roster, { kind: 'promote', username: 'bob' }), 'NOT_ENTITLED');
  });

  it("refuses a removed member's change", async () => {
    const roster = await step('alice', await makeGroup(), { kind: 'remove', username: 'bob' });
    await refused(step('bob', roster, { kind: 'leave' }), 'NOT_ENTITLED');
  });

  it('refuses a replayed old change (wrong version)', async () => {
    const v1 = await makeGroup();
    const add = await sign('alice', v1, { kind: 'add', member: member('dave') });
    const v2 = await applyChange(provider, v1, add);
    await refused(applyChange(provider, v2, add), 'WRONG_VERSION');
    const create = await sign('alice', undefined, { kind: 'create', title: 'X', members: [member('alice', 'admin')] });
    await refused(applyChange(provider, v2, create), 'WRONG_VERSION');
  });

  it('refuses a forked change (right version, wrong previous hash)', async () => {
    const v1 = await makeGroup();
    const branchA = await step('alice', v1, { kind: 'add', member: member('dave') });
    const branchB = await sign('alice', v1, { kind: 'add', member: member('erin') });
    // The next change on branch B: version 3, as branch A expects, but chained to B.
    const forked = await sign('alice', await applyChange(provider, v1, branchB), { kind: 'title', title: 'B' });
    await refused(applyChange(provider, branchA, forked), 'BROKEN_CHAIN');
    // B's own change, now one version behind.
    await refused(applyChange(provider, branchA, branchB), 'WRONG_VERSION');
  });

  it('refuses a change for another group', async () => {
    const mine = await makeGroup();
    const other = await makeGroup();
    const change = await sign('alice', other, { kind: 'title', title: 'Other' });
    await refused(applyChange(provider, { ...mine, hash: other.hash }, change), 'WRONG_GROUP');
  });

  it('refuses a bad signature: every bit of it flipped in turn', async () => {
    const roster = await makeGroup();
    const signed = await sign('alice', roster, { kind: 'title', title: 'New' });
    for (let bit = 0; bit < signed.signature.length * 8; bit++) {
      const signature = signed.signature.slice();
      signature[bit >> 3] = (signature[bit >> 3] ?? 0) ^ (1 << (bit & 7));
      await refused(applyChange(provider, roster, { change: signed.change, signature }), 'INVALID_SIGNATURE');
    }
    await expect(applyChange(provider, roster, signed)).resolves.toMatchObject({ title: 'New' });
  });

  it("refuses a change signed by a key that is not the author's listed key (a server swapping keys)", async () => {
    const roster = await makeGroup();
    const mallory = await generateIdentityKeyPair(provider);
    const forged = await createChange(provider, mallory, 'alice', roster, { kind: 'add', member: member('erin', 'admin') });
    await refused(applyChange(provider, roster, forged), 'INVALID_SIGNATURE');
    // A roster in which the server swapped alice's key refuses alice's genuine changes too.
    const swapped = { ...roster, members: roster.members.map((m) => (m.username === 'alice' ? { ...m, identityKey: mallory.publicKey } : m)) };
    const genuine = await sign('alice', roster, { kind: 'title', title: 'T' });
    await refused(applyChange(provider, swapped, genuine), 'INVALID_SIGNATURE');
  });

  it('refuses a create whose author is not an admin in it, or not in it', async () => {
    await refused(step('alice', undefined, { kind: 'create', title: 'X', members: [member('alice'), member('bob', 'admin')] }), 'NOT_ENTITLED');
    await refused(step('alice', undefined, { kind: 'create', title: 'X', members: [member('bob', 'admin')] }), 'NOT_ENTITLED');
  });

  it('refuses actions that change nothing', async () => {
    const roster = await makeGroup();
    await refused(step('alice', roster, { kind: 'add', member: member('bob') }), 'INVALID_CHANGE');
    await refused(step('alice', roster, { kind: 'remove', username: 'erin' }), 'INVALID_CHANGE');
    await refused(step('alice', roster, { kind: 'promote', username: 'erin' }), 'INVALID_CHANGE');
    await refused(step('alice', roster, { kind: 'demote', username: 'bob' }), 'INVALID_CHANGE');
    await refused(step('alice', roster, { kind: 'promote', username: 'alice' }), 'INVALID_CHANGE');
    await refused(step('alice', roster, { kind: 'remove', username: 'alice' }), 'INVALID_CHANGE');
    await refused(step('alice', roster, { kind: 'title', title: 'Trip' }), 'INVALID_CHANGE');
  });

  describe('the last-admin rule', () => {
    it('refuses the only admin demoting themselves', async () => {
      await refused(step('alice', await makeGroup(), { kind: 'demote', username: 'alice' }), 'LAST_ADMIN');
    });
    it('refuses the only admin leaving while members remain', async () => {
      await refused(step('alice', await makeGroup(), { kind: 'leave' }), 'LAST_ADMIN');
    });
    it('lets an admin step down or leave when another admin remains', async () => {
      const two = await step('alice', await makeGroup(), { kind: 'promote', username: 'bob' });
      expect(roles(await step('alice', two, { kind: 'demote', username: 'alice' }))['alice']).toBe('member');
      expect(roles(await step('alice', two, { kind: 'leave' }))).toEqual({ bob: 'admin', carol: 'member' });
    });
    it('lets the last member leave, after which nothing applies', async () => {
      const solo = await step('alice', undefined, { kind: 'create', title: 'Solo', members: [member('alice', 'admin')] });
      const empty = await step('alice', solo, { kind: 'leave' });
      expect(empty.members).toEqual([]);
      await refused(step('alice', empty, { kind: 'title', title: 'Back' }), 'NOT_ENTITLED');
    });
  });

  it('SECURITY-TESTS row 8: a change signature is no prekey or device-list signature, and neither of those is a change signature', async () => {
    const change = await sign('alice', undefined, { kind: 'create', title: 'Trip', members: [member('alice', 'admin'), member('bob')] });
    const alice = ids.alice;
    // A change signature, presented as a prekey signature and as a device-list signature over the same bytes.
    expect(await verifyPreKeySignature(provider, alice.publicKey, change.change, change.signature)).toBe(false);
    expect(await asyncOutcome(() => verifyDeviceList(provider, alice.publicKey, { list: change.change, signature: change.signature }))).toBe('INVALID_SIGNATURE');
    // A bare (prekey-style) signature and a device-list signature, presented as the change's.
    const bare = await xeddsaSign(provider, alice.privateKey, change.change);
    await refused(applyChange(provider, undefined, { change: change.change, signature: bare }), 'INVALID_SIGNATURE');
    const list = await signDeviceList(provider, alice, { username: 'alice', version: 1, devices: [{ deviceId: 1, registrationId: 1, authKey: ids.bob.publicKey }] });
    await refused(applyChange(provider, undefined, { change: list.list, signature: list.signature }), 'INVALID_CHANGE');
  });

  it('SECURITY-TESTS row 8: no login answer is a change signature, even to a challenge the server makes of a change, signed by the identity key', async () => {
    const change = await sign('alice', undefined, { kind: 'create', title: 'Trip', members: [member('alice', 'admin'), member('bob')] });
    // The server picks login challenges: one that is a change's bytes, answered by a device whose auth key is the identity key.
    const answer = await signAuthChallenge(provider, ids.alice.privateKey, 'alice', 1, change.change);
    await refused(applyChange(provider, undefined, { change: change.change, signature: answer }), 'INVALID_SIGNATURE');
    expect(await verifyAuthChallenge(provider, ids.alice.publicKey, 'alice', 1, change.change, change.signature)).toBe(false);
  });

  it('never mutates its input roster', async () => {
    const roster = await makeGroup();
    const snapshot = structuredClone(roster);
    await step('alice', roster, { kind: 'add', member: member('dave') });
    await step('alice', roster, { kind: 'demote', username: 'alice' }).catch(() => undefined);
    await step('alice', roster, { kind: 'promote', username: 'bob' });
    await step('bob', roster, { kind: 'leave' });
    expect(roster).toEqual(snapshot);
  });
});

describe('codec', () => {
  it('round-trips every action and signed changes', async () => {
    const roster = await makeGroup();
    const actions: GroupAction[] = [
      { kind: 'create', title: 'T', members: [member('alice', 'admin'), member('bob')] },
      { kind: 'add', member: member('dave', 'admin') },
      { kind: 'remove', username: 'bob' },
      { kind: 'promote', username: 'bob' },
      { kind: 'demote', username: 'bob' },
      { kind: 'title', title: 'Ü'.repeat(64) },
      { kind: 'leave' },
    ];
    for (const action of actions) {
      const change = { groupId: roster.id, version: 9, previousHash: roster.hash, author: 'alice', action };
      expect(decodeChange(encodeChange(change))).toEqual(change);
      const signed = await sign('alice', roster, action);
      expect(decodeSignedChange(encodeSignedChange(signed))).toEqual(signed);
    }
  });

  it('refuses malformed changes with INVALID_CHANGE only', () => {
    const base = { groupId: new Uint8Array(16), version: 1, previousHash: new Uint8Array(32), author: 'alice' };
    const bad: Uint8Array[] = [
      new Uint8Array([0xff]),
      encodeChange({ ...base, groupId: new Uint8Array(15), action: { kind: 'leave' } }),
      encodeChange({ ...base, author: 'Alice', action: { kind: 'leave' } }),
      encodeChange({ ...base, action: { kind: 'title', title: 'x'.repeat(129) } }),
      encodeChange({ ...base, action: { kind: 'title', title: '' } }),
      encodeChange({ ...base, action: { kind: 'add', member: { username: 'bob', identityKey: new Uint8Array(33), role: 'member' } } }),
      encodeChange({ ...base, action: { kind: 'create', title: 'T', members: [member('bob'), member('bob')] } }),
      encodeChange({
        ...base,
        action: { kind: 'create', title: 'T', members: Array.from({ length: MAX_GROUP_MEMBERS + 1 }, () => member('bob')) },
      }),
    ];
    for (const bytes of bad) {
      expect(() => decodeChange(bytes)).toThrow(RosterError);
      expect(() => decodeChange(bytes)).toThrow(expect.objectContaining({ code: 'INVALID_CHANGE' }) as Error);
    }
    expect(() => decodeSignedChange(new Uint8Array([0x0a, 0x05]))).toThrow(RosterError);
  });
});

describe('properties', () => {
  /** One random action by a random admin, valid for `roster` by construction, or undefined if none fits. */
  function validAction(roster: Roster, pick: number[]): { author: Name; action: GroupAction } | undefined {
    const at = <T>(list: readonly T[], i: number): T | undefined => list[(pick[i] ?? 0) % Math.max(list.length, 1)];
    const admins = roster.members.filter((m) => m.role === 'admin');
    const author = at(admins, 0)?.username as Name | undefined;
    if (author === undefined) return undefined;
    const others = roster.members.filter((m) => m.username !== author);
    const outsiders = NAMES.filter((n) => !roster.members.some((m) => m.username === n));
    const target = at(others, 2);
    const outsider = at(outsiders, 2);
    switch ((pick[1] ?? 0) % 6) {
      case 0:
        return outsider && { author, action: { kind: 'add', member: member(outsider, (pick[3] ?? 0) % 2 ? 'admin' : 'member') } };
      case 1:
        return target && { author, action: { kind: 'remove', username: target.username } };
      case 2:
        return target?.role === 'member' ? { author, action: { kind: 'promote', username: target.username } } : undefined;
      case 3:
        return target?.role === 'admin' ? { author, action: { kind: 'demote', username: target.username } } : undefined;
      case 4:
        return { author, action: { kind: 'title', title: `${roster.title}!`.slice(-100) } };
      default:
        return admins.length > 1 || others.length === 0 ? { author, action: { kind: 'leave' } } : undefined;
    }
  }

  it('a random sequence of valid changes by random admins always applies', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(fc.nat(), { minLength: 4, maxLength: 4 }), { maxLength: 12 }), async (picks) => {
        let roster = await step('alice', undefined, { kind: 'create', title: 'G', members: [member('alice', 'admin'), member('bob')] });
        for (const pick of picks) {
          const next = validAction(roster, pick);
          if (next === undefined) continue;
          const before = roster.version;
          roster = await step(next.author, roster, next.action);
          expect(roster.version).toBe(before + 1);
          if (roster.members.length > 0) expect(roster.members.some((m) => m.role === 'admin')).toBe(true);
        }
      }),
      { numRuns: 30 },
    );
  });

  it('any single-bit mutation of a signed change is refused with a typed error', async () => {
    const roster = await makeGroup();
    const signed: SignedGroupChange = await sign('alice', roster, { kind: 'add', member: member('dave') });
    const wire = encodeSignedChange(signed);
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: wire.length * 8 - 1 }), async (bit) => {
        const mutated = wire.slice();
        mutated[bit >> 3] = (mutated[bit >> 3] ?? 0) ^ (1 << (bit & 7));
        const error: unknown = await (async () => applyChange(provider, roster, decodeSignedChange(mutated)))().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(RosterError);
      }),
      { numRuns: 300 },
    );
  });
});
