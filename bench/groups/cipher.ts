/**
 * The group cipher on one machine, no server: Parley's groupEncrypt and
 * groupDecrypt against libsignal-client 0.90's (AGPL, test-only peer, driven
 * through its public API), and the sender's whole cost of a steady-state
 * group message (groupEncrypt + encoding the multicast frame for 2N−1
 * devices) against a one-to-one message (Double Ratchet encryptMessage to the
 * peer's two devices + encoding its `send` frame).
 */
import { createNodeProvider } from '@parley/crypto/node';
import {
  createSenderKeyDistributionMessage,
  encodeClientFrame,
  groupDecrypt,
  groupEncrypt,
  InMemorySenderKeyStore,
  processSenderKeyDistributionMessage,
  type ProtocolAddress,
} from '@parley/protocol';
import * as libsignal from 'libsignal-client-0.90';

import { parleyPeer, type ParleyPeer } from '../../testing/peers.js';
import { measure } from '../lib/measure.js';
import { encodeMulticast, type MulticastRecipient } from './multicast.js';

const provider = createNodeProvider();
const own = (bytes: Uint8Array): Uint8Array<ArrayBuffer> => Uint8Array.from(bytes);

/** libsignal's SenderKeyStore, in a map. */
class LibsignalSenderKeys extends libsignal.SenderKeyStore {
  readonly #records = new Map<string, libsignal.SenderKeyRecord>();
  async saveSenderKey(sender: libsignal.ProtocolAddress, distributionId: string, record: libsignal.SenderKeyRecord): Promise<void> {
    this.#records.set(`${sender.toString()}/${distributionId}`, record);
  }
  async getSenderKey(sender: libsignal.ProtocolAddress, distributionId: string): Promise<libsignal.SenderKeyRecord | null> {
    return this.#records.get(`${sender.toString()}/${distributionId}`) ?? null;
  }
}

/** One implementation's sender and one receiver, the receiver holding the sender's key. */
interface GroupPair {
  encrypt(plaintext: Uint8Array): Promise<Uint8Array>;
  decrypt(body: Uint8Array): Promise<Uint8Array>;
}

const SENDER: ProtocolAddress = { name: 'alice', deviceId: 1 };

async function parleyPair(distributionId: string): Promise<GroupPair> {
  const [sending, receiving] = [new InMemorySenderKeyStore(), new InMemorySenderKeyStore()];
  const skdm = await createSenderKeyDistributionMessage(provider, sending, SENDER, distributionId);
  await processSenderKeyDistributionMessage(receiving, SENDER, skdm.serialized);
  return {
    encrypt: async (plaintext) => (await groupEncrypt(provider, sending, SENDER, distributionId, plaintext)).serialized,
    decrypt: (body) => groupDecrypt(provider, receiving, SENDER, body),
  };
}

async function libsignalPair(distributionId: string): Promise<GroupPair> {
  const [sending, receiving] = [new LibsignalSenderKeys(), new LibsignalSenderKeys()];
  const sender = libsignal.ProtocolAddress.new(SENDER.name, SENDER.deviceId);
  const skdm = await libsignal.SenderKeyDistributionMessage.create(sender, distributionId, sending);
  await libsignal.processSenderKeyDistributionMessage(sender, skdm, receiving);
  return {
    encrypt: async (plaintext) => (await libsignal.groupEncrypt(sender, distributionId, sending, own(plaintext))).serialize(),
    decrypt: (body) => libsignal.groupDecrypt(sender, receiving, own(body)),
  };
}

const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

export interface CipherOptions {
  readonly plaintext: Uint8Array;
  /** measure()'s budget per timed figure, in ms. */
  readonly budgetMs: number;
  /** Messages decrypted per implementation (encrypted beforehand, opened in order). */
  readonly decrypts: number;
  /** Each figure is taken this many times, Parley and libsignal alternating; the median is kept. */
  readonly rounds: number;
}

/** µs per groupEncrypt and per groupDecrypt: [Parley, libsignal]. */
export async function groupCipherFigures(options: CipherOptions): Promise<{ encrypt: [number, number]; decrypt: [number, number] }> {
  const distributionId = crypto.randomUUID();
  const pairs = [await parleyPair(distributionId), await libsignalPair(distributionId)] as const;
  const encrypt: [number[], number[]] = [[], []];
  const decrypt: [number[], number[]] = [[], []];
  for (let round = 0; round < options.rounds; round++) {
    const order = round % 2 === 0 ? [0, 1] : [1, 0];
    for (const i of order) {
      const pair = pairs[i as 0 | 1];
      encrypt[i as 0 | 1].push((await measure(() => pair.encrypt(options.plaintext), { budgetMs: options.budgetMs })).microseconds);
    }
    for (const i of order) {
      // A fresh pair: the receiver opens, in order, messages sealed before the clock starts.
      const pair = i === 0 ? await parleyPair(crypto.randomUUID()) : await libsignalPair(crypto.randomUUID());
      const sealed: Uint8Array[] = [];
      for (let m = 0; m < options.decrypts; m++) sealed.push(await pair.encrypt(options.plaintext));
      await pair.decrypt(sealed[0]!); // warm the path
      const start = performance.now();
      let opened: Uint8Array = options.plaintext;
      for (let m = 1; m < sealed.length; m++) opened = await pair.decrypt(sealed[m]!);
      decrypt[i as 0 | 1].push(((performance.now() - start) * 1000) / (sealed.length - 1));
      if (!sameBytes(opened, options.plaintext)) throw new Error('groupDecrypt returned other bytes than were sent');
    }
  }
  return { encrypt: [median(encrypt[0]), median(encrypt[1])], decrypt: [median(decrypt[0]), median(decrypt[1])] };
}

/** The recipients of a group of `members` accounts with two devices each, seen by the sender (its own device left out). */
export function groupRecipients(usernames: readonly string[], registrationId: (username: string, deviceId: number) => number): MulticastRecipient[] {
  return usernames.map((username, i) => ({
    username,
    devices: (i === 0 ? [2] : [1, 2]).map((deviceId) => ({ deviceId, registrationId: registrationId(username, deviceId) })),
  }));
}

/** A sender with answered one-to-one sessions with both devices of one peer. */
async function oneToOne(): Promise<{ alice: ParleyPeer; bobs: ParleyPeer[] }> {
  const alice = await parleyPeer(provider, 'alice', 1, 0);
  const bobs = [await parleyPeer(provider, 'bob', 1, 1), await parleyPeer(provider, 'bob', 2, 1)];
  for (const bob of bobs) {
    await alice.startSession(bob, await bob.bundle());
    await bob.decrypt(alice.address, await alice.encrypt(bob.address, new Uint8Array(8)));
    await alice.decrypt(bob.address, await bob.encrypt(alice.address, new Uint8Array(8)));
  }
  return { alice, bobs };
}

/** µs of the sender's whole cost: [group message to `recipients`, one-to-one message to two devices]. */
export async function senderCost(recipients: readonly MulticastRecipient[], options: CipherOptions): Promise<[number, number]> {
  const distributionId = crypto.randomUUID();
  const store = new InMemorySenderKeyStore();
  await createSenderKeyDistributionMessage(provider, store, SENDER, distributionId);
  let requestId = 0;
  const group = async () => {
    const sealed = await groupEncrypt(provider, store, SENDER, distributionId, options.plaintext);
    encodeMulticast(++requestId, sealed.serialized, recipients);
  };
  const { alice, bobs } = await oneToOne();
  const direct = async () => {
    const messages = [];
    for (const bob of bobs) {
      const sealed = await alice.encrypt(bob.address, options.plaintext);
      messages.push({ deviceId: bob.address.deviceId, registrationId: 1, type: sealed.type, body: sealed.body });
    }
    encodeClientFrame({ kind: 'send', requestId: ++requestId, destinations: [{ username: 'bob', messages }] });
  };
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let round = 0; round < options.rounds; round++) {
    if (round % 2 === 0) ours.push((await measure(group, { budgetMs: options.budgetMs })).microseconds);
    theirs.push((await measure(direct, { budgetMs: options.budgetMs })).microseconds);
    if (round % 2 === 1) ours.push((await measure(group, { budgetMs: options.budgetMs })).microseconds);
  }
  return [median(ours), median(theirs)];
}
