/**
 * Fuzz targets for what `@parley/protocol` decodes: the messages of one-to-one
 * sessions and groups (parsed, and run through decryption), the records a
 * client stores, the WebSocket and provisioning-relay frames, device lists,
 * scanned safety numbers and usernames. Every one of them refuses with a
 * ProtocolError, whatever its code, and nothing else.
 */
import { createNodeProvider } from '@parley/crypto/node';
import {
  compareScannable,
  createFingerprint,
  createSenderKeyDistributionMessage,
  decodeClientFrame,
  decodeDeviceList,
  decodePreKeySignalMessage,
  decodeProvisioningClientFrame,
  decodeProvisioningServerFrame,
  decodeSenderKeyDistributionMessage,
  decodeSenderKeyMessage,
  decodeServerFrame,
  decodeServerFrames,
  decodeSignalMessage,
  decryptPreKeySignalMessage,
  decryptSignalMessage,
  deserializeIdentityKeyPair,
  deserializeKyberPreKeyRecord,
  deserializePreKeyRecord,
  deserializeSenderKeyRecord,
  deserializeSessionRecord,
  deserializeSignedPreKeyRecord,
  encodeClientFrame,
  encodeDeviceList,
  encodeProvisioningClientFrame,
  encodeProvisioningServerFrame,
  encodeServerFrame,
  foldUsername,
  generateIdentityKeyPair,
  generateKyberPreKey,
  generatePreKeys,
  generateSignedPreKey,
  groupDecrypt,
  groupEncrypt,
  InMemorySenderKeyStore,
  isProtocolError,
  processSenderKeyDistributionMessage,
  serializeIdentityKeyPair,
  serializeKyberPreKeyRecord,
  serializePreKeyRecord,
  serializeSenderKeyRecord,
  serializeSessionRecord,
  serializeSignedPreKeyRecord,
  type ClientFrame,
  type ServerFrame,
} from '@parley/protocol';

import { NOW, parleyPeer, type ParleyPeer } from '../../peers.js';
import { once, type FuzzTarget, type Harness } from '../engine.js';

const provider = createNodeProvider();
/**
 * A message may name a counter up to MAX_FORWARD_JUMPS ahead, and the keys up
 * to it are derived before its MAC can be checked (as libsignal does): about
 * half a second by design, which a loaded 2-core machine can make several.
 */
const DECRYPT_HANG_MS = 5_000;
const text = (value: string) => new TextEncoder().encode(value);
const bytes = (length: number, fill: number) => new Uint8Array(length).fill(fill);

/** A target whose decoder is a function of the input alone, refusing with a ProtocolError. */
function protocolTarget(name: string, title: string, seeds: () => Promise<Uint8Array[]> | Uint8Array[], decode: (input: Uint8Array) => unknown): FuzzTarget {
  return {
    name,
    title,
    async open(): Promise<Harness> {
      return { seeds: await seeds(), decode, isTypedError: (error) => isProtocolError(error) };
    },
  };
}

/** Alice and Bob with a session: Alice's first messages (PreKeySignalMessages) and, after Bob's reply, her SignalMessages. */
async function conversation(): Promise<{ alice: ParleyPeer; bob: ParleyPeer; preKeys: Uint8Array[]; whispers: Uint8Array[] }> {
  const [alice, bob] = [await parleyPeer(provider, 'alice'), await parleyPeer(provider, 'bob')];
  await alice.startSession(bob, await bob.bundle());
  const preKeys = [];
  for (const word of ['first', 'second', 'third']) preKeys.push((await alice.encrypt(bob.address, text(word))).body);
  await bob.decrypt(alice.address, { type: 3, body: preKeys[0]! });
  await alice.decrypt(bob.address, await bob.encrypt(alice.address, text('reply')));
  const whispers = [];
  for (const word of ['fourth', 'fifth', 'sixth']) whispers.push((await alice.encrypt(bob.address, text(word))).body);
  return { alice, bob, preKeys, whispers };
}

/** Alice and Bob's conversation, for targets that read its bytes; the decryption targets make their own, whose state they change. */
const sharedConversation = once(conversation);

const GROUP = '6e4e3f2a-1b2c-4d5e-8f90-a1b2c3d4e5f6';

/** A sender key of Alice's for GROUP, its distribution message, and a few group messages under it. */
async function group() {
  const alice = { name: 'alice', deviceId: 1 };
  const own = new InMemorySenderKeyStore();
  const distribution = await createSenderKeyDistributionMessage(provider, own, alice, GROUP);
  const messages = [];
  for (const word of ['one', 'two', 'three']) messages.push((await groupEncrypt(provider, own, alice, GROUP, text(word))).serialized);
  return { alice, own, distribution: distribution.serialized, messages };
}

/** One sender key for every group target: the decrypting one gives Bob a store of his own. */
const sharedGroup = once(group);

const clientFrames: ClientFrame[] = [
  { kind: 'auth', token: bytes(32, 7) },
  { kind: 'ack', ids: [1, 2, 300] },
  {
    kind: 'send',
    requestId: 5,
    destinations: [
      { username: 'bob', messages: [{ deviceId: 1, registrationId: 4242, type: 3, body: bytes(40, 1) }, { deviceId: 2, registrationId: 7, type: 2, body: bytes(3, 2) }] },
      { username: 'carol', messages: [{ deviceId: 1, registrationId: 9, type: 2, body: bytes(12, 3) }] },
    ],
  },
  {
    kind: 'multicast',
    requestId: 6,
    type: 7,
    body: bytes(30, 4),
    recipients: [
      { username: 'bob', devices: [{ deviceId: 1, registrationId: 4242 }, { deviceId: 3, registrationId: 11 }] },
      { username: 'dave', devices: [{ deviceId: 1, registrationId: 1 }] },
    ],
  },
];

const serverFrames: ServerFrame[] = [
  { kind: 'ready' },
  { kind: 'drained' },
  { kind: 'sent', requestId: 5, timestamp: NOW },
  { kind: 'envelope', envelope: { id: 17, timestamp: NOW, source: 'alice', sourceDevice: 2, type: 3, body: bytes(48, 5) } },
  { kind: 'refused', requestId: 6, code: 'MAILBOX_FULL', message: 'full', mismatches: [] },
  { kind: 'refused', requestId: 7, code: 'DEVICE_MISMATCH', message: 'devices', mismatches: [{ username: 'bob', missing: [2], extra: [5, 6], stale: [1] }] },
];

async function deviceLists(): Promise<Uint8Array[]> {
  const authKey = (await generateIdentityKeyPair(provider)).publicKey;
  return [
    encodeDeviceList({ username: 'alice', version: 1, devices: [{ deviceId: 1, registrationId: 4242, authKey }] }),
    encodeDeviceList({ username: 'bob_smith', version: 9, devices: [1, 2, 5].map((deviceId) => ({ deviceId, registrationId: deviceId * 100, authKey })) }),
  ];
}

const keyRecords = once(async () => {
  const identity = await generateIdentityKeyPair(provider);
  return {
    identity,
    preKeys: await generatePreKeys(provider, 1, 2),
    signed: await generateSignedPreKey(provider, identity, 7, NOW),
    kyber: await generateKyberPreKey(provider, identity, 9, NOW, { lastResort: true }),
  };
});

async function scannable(): Promise<{ ours: Uint8Array; theirs: Uint8Array }> {
  const [a, b] = [await generateIdentityKeyPair(provider), await generateIdentityKeyPair(provider)];
  const mine = await createFingerprint(provider, { id: text('alice'), identityKey: a.publicKey }, { id: text('bob'), identityKey: b.publicKey }, { iterations: 2 });
  const yours = await createFingerprint(provider, { id: text('bob'), identityKey: b.publicKey }, { id: text('alice'), identityKey: a.publicKey }, { iterations: 2 });
  return { ours: mine.scannable, theirs: yours.scannable };
}

export const protocolTargets: readonly FuzzTarget[] = [
  protocolTarget('signal-message', 'SignalMessage', async () => (await sharedConversation()).whispers, decodeSignalMessage),
  protocolTarget('prekey-signal-message', 'PreKeySignalMessage', async () => (await sharedConversation()).preKeys, decodePreKeySignalMessage),
  {
    name: 'signal-message-decrypt',
    title: 'SignalMessage through decryption',
    hangMs: DECRYPT_HANG_MS,
    async open() {
      const { alice, bob, whispers } = await conversation();
      return {
        seeds: whispers,
        decode: (input) => decryptSignalMessage(provider, bob.stores, alice.address, input),
        isTypedError: (error) => isProtocolError(error),
      };
    },
  },
  {
    name: 'prekey-signal-message-decrypt',
    title: 'PreKeySignalMessage through decryption',
    hangMs: DECRYPT_HANG_MS,
    async open() {
      const [alice, bob] = [await parleyPeer(provider, 'alice'), await parleyPeer(provider, 'bob')];
      await alice.startSession(bob, await bob.bundle());
      const firsts = [];
      for (const word of ['first', 'second', 'third']) firsts.push((await alice.encrypt(bob.address, text(word))).body);
      return {
        seeds: firsts,
        decode: (input) => decryptPreKeySignalMessage(provider, bob.stores, alice.address, input),
        isTypedError: (error) => isProtocolError(error),
      };
    },
  },
  protocolTarget('sender-key-distribution-message', 'SenderKeyDistributionMessage', async () => [(await sharedGroup()).distribution], decodeSenderKeyDistributionMessage),
  protocolTarget('sender-key-message', 'SenderKeyMessage', async () => (await sharedGroup()).messages, decodeSenderKeyMessage),
  {
    name: 'sender-key-message-decrypt',
    title: 'SenderKeyMessage through group decryption',
    hangMs: DECRYPT_HANG_MS,
    async open() {
      const { alice, distribution, messages } = await sharedGroup();
      const bobs = new InMemorySenderKeyStore();
      await processSenderKeyDistributionMessage(bobs, alice, distribution);
      return { seeds: messages, decode: (input) => groupDecrypt(provider, bobs, alice, input), isTypedError: (error) => isProtocolError(error) };
    },
  },
  protocolTarget(
    'session-record',
    'session record',
    async () => {
      const { alice, bob } = await sharedConversation();
      const records = [await alice.stores.sessions.loadSession(bob.address), await bob.stores.sessions.loadSession(alice.address)];
      return records.map((record) => serializeSessionRecord(record!).expose());
    },
    deserializeSessionRecord,
  ),
  protocolTarget(
    'sender-key-record',
    'sender key record',
    async () => {
      const { alice, own } = await sharedGroup();
      return [serializeSenderKeyRecord((await own.loadSenderKey(alice, GROUP))!).expose()];
    },
    deserializeSenderKeyRecord,
  ),
  protocolTarget('identity-key-pair', 'identity key pair record', async () => [serializeIdentityKeyPair((await keyRecords()).identity).expose()], deserializeIdentityKeyPair),
  protocolTarget('prekey-record', 'prekey record', async () => (await keyRecords()).preKeys.map((k) => serializePreKeyRecord(k).expose()), deserializePreKeyRecord),
  protocolTarget('signed-prekey-record', 'signed prekey record', async () => [serializeSignedPreKeyRecord((await keyRecords()).signed).expose()], deserializeSignedPreKeyRecord),
  protocolTarget(
    'kyber-prekey-record',
    'Kyber prekey record',
    async () => [serializeKyberPreKeyRecord((await keyRecords()).kyber).expose()],
    (input) => deserializeKyberPreKeyRecord(input, { lastResort: true }),
  ),
  protocolTarget('client-frame', 'ClientFrame', () => clientFrames.map(encodeClientFrame), decodeClientFrame),
  protocolTarget('server-frame', 'ServerFrame', () => serverFrames.map(encodeServerFrame), decodeServerFrame),
  protocolTarget(
    'server-frames',
    'a batch of ServerFrames',
    () => [Uint8Array.from(serverFrames.flatMap((f) => [...encodeServerFrame(f)]))],
    decodeServerFrames,
  ),
  protocolTarget(
    'provisioning-client-frame',
    'ProvisioningClientFrame',
    () => [{ kind: 'create' as const }, { kind: 'join' as const, address: bytes(16, 9) }, { kind: 'message' as const, body: bytes(60, 8) }].map(encodeProvisioningClientFrame),
    decodeProvisioningClientFrame,
  ),
  protocolTarget(
    'provisioning-server-frame',
    'ProvisioningServerFrame',
    () => [{ kind: 'address' as const, address: bytes(16, 9) }, { kind: 'joined' as const }, { kind: 'message' as const, body: bytes(60, 8) }].map(encodeProvisioningServerFrame),
    decodeProvisioningServerFrame,
  ),
  protocolTarget('device-list', 'device list', deviceLists, decodeDeviceList),
  {
    name: 'scanned-safety-number',
    title: 'scanned safety number',
    async open() {
      const { ours, theirs } = await scannable();
      return { seeds: [theirs], decode: (input) => compareScannable(ours, input), isTypedError: (error) => isProtocolError(error) };
    },
  },
  protocolTarget('username', 'username', () => ['alice', 'Bob_Smith', 'carol_99'].map(text), (input) => foldUsername(new TextDecoder().decode(input))),
];
