/**
 * Fuzz targets for what `@parley/client` decodes: message contents (from any
 * sender), group changes (signed by members, relayed by the server) and their
 * application to a roster, the provisioning payload and link codes of device
 * linking (with the contacts and history inside it), and this device's own record as read back from its store. Each
 * refuses with the error its doc comment names: ProtocolError for contents
 * and binary records, RosterError for group changes, ClientError for link codes.
 */
import { createNodeProvider } from '@parley/crypto/node';
import { generateIdentityKeyPair, isProtocolError, signDeviceList } from '@parley/protocol';

import { isClientError } from '../../../packages/client/src/errors.js';
import { decodeContent, encodeContent, type Content } from '../../../packages/client/src/content.js';
import {
  applyChange,
  createChange,
  decodeChange,
  decodeSignedChange,
  encodeSignedChange,
  isRosterError,
  type Roster,
  type SignedGroupChange,
} from '../../../packages/client/src/groups/roster.js';
import { decodeProvision, encodeProvision, formatLinkCode, parseLinkCode } from '../../../packages/client/src/linking.js';
import { decodeLinkedContacts, decodeLinkedHistory, decodeLocalDevice, encodeLocalDevice } from '../../../packages/client/src/store/records.js';
import { NOW } from '../../peers.js';
import { once, type FuzzTarget, type Harness } from '../engine.js';

const provider = createNodeProvider();
const text = (value: string) => new TextEncoder().encode(value);
const GROUP_ID = new Uint8Array(16).fill(0x42);

/** A group Alice created with Bob, the signed changes that made it, and changes that would move it on; made once, read by three targets. */
const groupChanges = once(async (): Promise<{ roster: Roster; history: SignedGroupChange[]; next: SignedGroupChange[] }> => {
  const [alice, bob, carol] = [await generateIdentityKeyPair(provider), await generateIdentityKeyPair(provider), await generateIdentityKeyPair(provider)];
  const members = [
    { username: 'alice', identityKey: alice.publicKey, role: 'admin' as const },
    { username: 'bob', identityKey: bob.publicKey, role: 'member' as const },
  ];
  const create = await createChange(provider, alice, 'alice', undefined, { kind: 'create', title: 'Picnic', members });
  const roster = await applyChange(provider, undefined, create);
  const next = [
    await createChange(provider, alice, 'alice', roster, { kind: 'add', member: { username: 'carol', identityKey: carol.publicKey, role: 'member' } }),
    await createChange(provider, alice, 'alice', roster, { kind: 'promote', username: 'bob' }),
    await createChange(provider, alice, 'alice', roster, { kind: 'title', title: 'Picnic on Sunday' }),
    await createChange(provider, bob, 'bob', roster, { kind: 'leave' }),
  ];
  return { roster, history: [create], next };
});

function contents(changes: readonly Uint8Array[]): Content[] {
  const sentAt = NOW;
  return [
    { kind: 'text', sentAt, body: 'hello, world' },
    { kind: 'text', sentAt, body: 'again', resentFor: NOW - 5 },
    { kind: 'receipt', sentAt, receipt: 'read', messages: [NOW - 1, NOW - 2] },
    { kind: 'typing', sentAt, typing: 'started' },
    { kind: 'sync', sentAt, destination: 'bob', message: { kind: 'text', sentAt, body: 'synced' } },
    { kind: 'decryption-error', sentAt, failedAt: NOW - 9, sourceDevice: 2 },
    { kind: 'group-change', sentAt, changes: [...changes] },
    { kind: 'sender-key', sentAt, groupId: GROUP_ID, distribution: new Uint8Array(70).fill(3) },
    { kind: 'group-text', sentAt, groupId: GROUP_ID, body: 'to the group' },
    { kind: 'group-resync', sentAt, groupId: GROUP_ID, have: 3 },
  ];
}

async function localDevice(): Promise<Uint8Array> {
  return encodeLocalDevice({
    username: 'alice',
    deviceId: 2,
    registrationId: 4242,
    serverUrl: 'https://parley.example',
    identity: await generateIdentityKeyPair(provider),
    auth: await generateIdentityKeyPair(provider),
    nextPreKeyId: 101,
    signedPreKeyId: 3,
    signedPreKeyAt: NOW,
    lastResortCount: 1,
  });
}

async function provision(): Promise<Uint8Array> {
  const identity = await generateIdentityKeyPair(provider);
  const auth = await generateIdentityKeyPair(provider);
  const deviceList = await signDeviceList(provider, identity, { username: 'alice', version: 2, devices: [{ deviceId: 1, registrationId: 7, authKey: auth.publicKey }] });
  return encodeProvision({
    username: 'alice',
    identity,
    deviceId: 2,
    linkToken: text('a'.repeat(43)),
    deviceList,
    contacts: text(JSON.stringify([{ username: 'bob', identityKey: 'BQ', verified: true, blocked: false, keyChanged: false, deviceListVersion: 3, devices: [{ deviceId: 1, registrationId: 9 }] }])),
    history: text(
      JSON.stringify([{ conversation: 'bob', direction: 'incoming', author: 'bob', authorDevice: 1, sentAt: NOW, storedAt: NOW + 1, kind: 'text', body: 'hi', status: 'read' }]),
    ),
  });
}

/** A provisioning payload as the new device reads it: the payload, then the contacts and history inside it. */
function decodeWholeProvision(input: Uint8Array): void {
  const provision = decodeProvision(input);
  decodeLinkedContacts(provision.contacts);
  decodeLinkedHistory(provision.history);
}

const linkCodes = () =>
  (['link', 'join'] as const).map((kind) =>
    text(formatLinkCode({ kind, serverUrl: 'https://parley.example:8443', address: new Uint8Array(16).fill(1), publicKey: new Uint8Array(32).fill(2), secret: new Uint8Array(32).fill(3) })),
  );

function target(name: string, title: string, open: () => Promise<Harness>): FuzzTarget {
  return { name, title, open };
}

export const clientTargets: readonly FuzzTarget[] = [
  target('content', 'message content', async () => {
    const { next } = await groupChanges();
    return { seeds: contents(next.map(encodeSignedChange)).map(encodeContent), decode: decodeContent, isTypedError: (error) => isProtocolError(error) };
  }),
  target('group-change', 'group change', async () => {
    const { history, next } = await groupChanges();
    return { seeds: [...history, ...next].map((c) => c.change), decode: decodeChange, isTypedError: (error) => isRosterError(error) };
  }),
  target('signed-group-change', 'signed group change, applied to a roster', async () => {
    const { roster, next } = await groupChanges();
    return {
      seeds: next.map(encodeSignedChange),
      decode: (input) => applyChange(provider, roster, decodeSignedChange(input)),
      isTypedError: (error) => isRosterError(error),
    };
  }),
  target('local-device-record', "this device's stored record", async () => ({
    seeds: [await localDevice()],
    decode: decodeLocalDevice,
    isTypedError: (error) => isProtocolError(error),
  })),
  target('provision', 'provisioning payload', async () => ({
    seeds: [await provision()],
    decode: decodeWholeProvision,
    isTypedError: (error) => isProtocolError(error) || isClientError(error, 'BAD_RESPONSE'),
  })),
  target('link-code', 'link code', async () => ({
    seeds: linkCodes(),
    decode: (input) => {
      const code = new TextDecoder().decode(input);
      return parseLinkCode(code, code.startsWith('parley://join') ? 'join' : 'link');
    },
    isTypedError: (error) => isClientError(error, 'INVALID_ARGUMENT'),
  })),
];
