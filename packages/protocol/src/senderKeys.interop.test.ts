/**
 * Sender key interop with libsignal-client 0.90 as a live peer: a sender key
 * distributed by either side decrypts in the other's group cipher, messages
 * delivered out of order and duplicates refused on both sides; distribution
 * messages are byte-identical; and sender key records are byte-identical and
 * load in the other implementation, the sender's own (with its signing
 * private key) included.
 */
import { serializePublicKey } from '@parley/crypto';
import { createNodeProvider } from '@parley/crypto/node';
import * as libsignal from 'libsignal-client-0.90';
import { describe, expect, it } from 'vitest';

import { seededRandom } from '../../../testing/random.js';
import {
  createSenderKeyDistributionMessage,
  decodeSenderKeyDistributionMessage,
  deserializeSenderKeyRecord,
  groupDecrypt,
  groupEncrypt,
  InMemorySenderKeyStore,
  isProtocolError,
  processSenderKeyDistributionMessage,
  SENDER_KEY_MESSAGE_TYPE,
  serializeSenderKeyRecord,
  type ProtocolAddress,
} from './index.js';

const provider = createNodeProvider();
const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array) => new TextDecoder().decode(b);
const own = (bytes: Uint8Array): Uint8Array<ArrayBuffer> => Uint8Array.from(bytes);
const DISTRIBUTION = 'd1b2c3a4-0000-4000-8000-00000000abcd';
const alice: ProtocolAddress = { name: 'alice', deviceId: 1 };
const libAlice = libsignal.ProtocolAddress.new(alice.name, alice.deviceId);

/** libsignal's SenderKeyStore, in a map. */
class LibsignalSenderKeys extends libsignal.SenderKeyStore {
  readonly records = new Map<string, libsignal.SenderKeyRecord>();
  async saveSenderKey(sender: libsignal.ProtocolAddress, distributionId: string, record: libsignal.SenderKeyRecord): Promise<void> {
    this.records.set(`${sender.toString()}/${distributionId}`, record);
  }
  async getSenderKey(sender: libsignal.ProtocolAddress, distributionId: string): Promise<libsignal.SenderKeyRecord | null> {
    return this.records.get(`${sender.toString()}/${distributionId}`) ?? null;
  }
  recordBytes(sender: libsignal.ProtocolAddress, distributionId: string): Uint8Array {
    const record = this.records.get(`${sender.toString()}/${distributionId}`);
    if (record === undefined) throw new Error('no record');
    return record.serialize();
  }
}

/** A seeded shuffle. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const random = seededRandom(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

async function rejection(attempt: Promise<unknown>): Promise<unknown> {
  const error = await attempt.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected a rejection').toBeDefined();
  return error;
}

describe('libsignal-client 0.90 interop: sender keys', () => {
  it("a Parley sender key decrypts in libsignal's group cipher, out of order, duplicates refused", async () => {
    const parleyStore = new InMemorySenderKeyStore();
    const libStore = new LibsignalSenderKeys();
    const skdm = await createSenderKeyDistributionMessage(provider, parleyStore, alice, DISTRIBUTION);
    await libsignal.processSenderKeyDistributionMessage(libAlice, libsignal.SenderKeyDistributionMessage.deserialize(own(skdm.serialized)), libStore);

    const sent = [];
    for (let i = 0; i < 60; i++) {
      const message = await groupEncrypt(provider, parleyStore, alice, DISTRIBUTION, text(`message ${i}`));
      sent.push({ body: message.serialized, plaintext: `message ${i}` });
    }
    for (const { body, plaintext } of shuffled(sent, 7)) {
      expect(read(await libsignal.groupDecrypt(libAlice, libStore, own(body)))).toBe(plaintext);
    }
    await rejection(libsignal.groupDecrypt(libAlice, libStore, own(sent[3]!.body)));
  });

  it("a libsignal sender key decrypts in Parley's group cipher, out of order, duplicates refused", async () => {
    const libStore = new LibsignalSenderKeys();
    const parleyStore = new InMemorySenderKeyStore();
    const skdm = await libsignal.SenderKeyDistributionMessage.create(libAlice, DISTRIBUTION, libStore);
    await processSenderKeyDistributionMessage(parleyStore, alice, skdm.serialize());

    const sent = [];
    for (let i = 0; i < 60; i++) {
      const message = await libsignal.groupEncrypt(libAlice, DISTRIBUTION, libStore, text(`message ${i}`));
      expect(message.type()).toBe(SENDER_KEY_MESSAGE_TYPE);
      sent.push({ body: message.serialize(), plaintext: `message ${i}` });
    }
    for (const { body, plaintext } of shuffled(sent, 11)) {
      expect(read(await groupDecrypt(provider, parleyStore, alice, body))).toBe(plaintext);
    }
    const error = await rejection(groupDecrypt(provider, parleyStore, alice, sent[5]!.body));
    expect(isProtocolError(error, 'DUPLICATE_MESSAGE')).toBe(true);
  });

  it("Parley's distribution message is byte-identical to libsignal's for the same key", async () => {
    const skdm = await createSenderKeyDistributionMessage(provider, new InMemorySenderKeyStore(), alice, DISTRIBUTION);
    const theirs = libsignal.SenderKeyDistributionMessage._new(
      3,
      DISTRIBUTION,
      skdm.chainId,
      skdm.iteration,
      own(skdm.chainKey.expose()),
      libsignal.PublicKey.deserialize(own(serializePublicKey(skdm.signingKey))),
    );
    expect(theirs.serialize()).toEqual(skdm.serialized);
    const parsed = libsignal.SenderKeyDistributionMessage.deserialize(own(skdm.serialized));
    expect([parsed.chainId(), parsed.iteration(), parsed.distributionId()]).toEqual([skdm.chainId, skdm.iteration, DISTRIBUTION]);
  });

  it('receiver records are byte-identical after the same distribution and the same deliveries, skipped keys included', async () => {
    const senderStore = new LibsignalSenderKeys();
    const skdm = await libsignal.SenderKeyDistributionMessage.create(libAlice, DISTRIBUTION, senderStore);
    const libReceiver = new LibsignalSenderKeys();
    const parleyReceiver = new InMemorySenderKeyStore();
    await libsignal.processSenderKeyDistributionMessage(libAlice, skdm, libReceiver);
    await processSenderKeyDistributionMessage(parleyReceiver, alice, skdm.serialize());
    const same = async () => {
      const record = await parleyReceiver.loadSenderKey(alice, DISTRIBUTION);
      expect(serializeSenderKeyRecord(record!).expose()).toEqual(libReceiver.recordBytes(libAlice, DISTRIBUTION));
    };
    await same();
    const bodies = [];
    for (let i = 0; i < 12; i++) bodies.push((await libsignal.groupEncrypt(libAlice, DISTRIBUTION, senderStore, text(`m${i}`))).serialize());
    for (const index of [4, 0, 11, 2]) {
      await libsignal.groupDecrypt(libAlice, libReceiver, bodies[index]!);
      await groupDecrypt(provider, parleyReceiver, alice, bodies[index]!);
      await same();
    }
  });

  it("the sender's own record moves between the implementations and keeps sending", async () => {
    // Parley's record, signing private key included, loaded by libsignal, which sends on.
    const parleyStore = new InMemorySenderKeyStore();
    const parleyReceiver = new InMemorySenderKeyStore();
    const skdm = await createSenderKeyDistributionMessage(provider, parleyStore, alice, DISTRIBUTION);
    await processSenderKeyDistributionMessage(parleyReceiver, alice, skdm.serialized);
    await groupEncrypt(provider, parleyStore, alice, DISTRIBUTION, text('first'));
    const libStore = new LibsignalSenderKeys();
    const ours = await parleyStore.loadSenderKey(alice, DISTRIBUTION);
    await libStore.saveSenderKey(libAlice, DISTRIBUTION, libsignal.SenderKeyRecord.deserialize(own(serializeSenderKeyRecord(ours!).expose())));
    const fromLib = await libsignal.groupEncrypt(libAlice, DISTRIBUTION, libStore, text('from libsignal'));
    expect(read(await groupDecrypt(provider, parleyReceiver, alice, fromLib.serialize()))).toBe('from libsignal');
    expect(libStore.recordBytes(libAlice, DISTRIBUTION)).toEqual(
      serializeSenderKeyRecord({ states: [{ ...ours!.states[0]!, chainKey: (await parleyReceiver.loadSenderKey(alice, DISTRIBUTION))!.states[0]!.chainKey }] }).expose(),
    );

    // And libsignal's, loaded by Parley, which sends on.
    const libSender = new LibsignalSenderKeys();
    const libReceiver = new LibsignalSenderKeys();
    const theirs = await libsignal.SenderKeyDistributionMessage.create(libAlice, DISTRIBUTION, libSender);
    await libsignal.processSenderKeyDistributionMessage(libAlice, theirs, libReceiver);
    const restored = new InMemorySenderKeyStore();
    await restored.storeSenderKey(alice, DISTRIBUTION, deserializeSenderKeyRecord(libSender.recordBytes(libAlice, DISTRIBUTION)));
    const fromParley = await groupEncrypt(provider, restored, alice, DISTRIBUTION, text('from parley'));
    expect(read(await libsignal.groupDecrypt(libAlice, libReceiver, own(fromParley.serialized)))).toBe('from parley');
    expect(decodeSenderKeyDistributionMessage(theirs.serialize()).chainId).toBe(theirs.chainId());
  });
});
