/**
 * The group cipher over in-memory stores: messages decrypt in any order and
 * exactly once; counters past MAX_FORWARD_JUMPS are refused (the boundary is
 * accepted); skipped keys stay bounded; forged, tampered or undecryptable
 * messages are refused with the store unchanged (every bit of a message
 * flipped); one sender's key does not open another's messages, nor a message
 * signed for one group open in another; a replayed
 * distribution cannot rewind a chain; and states per sender stay bounded.
 * A fast-check model sends, delivers in any order, duplicates and restarts
 * the receiver through serialized records: every message decrypts exactly once.
 * Every pair of crypto providers interoperates.
 */
import { concatBytes, SecretBytes, type CryptoProvider } from '@parley/crypto';
import { createNodeProvider } from '@parley/crypto/node';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { asyncOutcome } from '../../../testing/fuzz.js';
import { parleyPeer } from '../../../testing/peers.js';
import { providerCases } from '../../../testing/providers.js';
import type { ProtocolAddress } from './address.js';
import { decodeSignalMessage } from './codec/messages.js';
import { encodeSenderKeyDistributionMessage, encodeSenderKeyMessage, encodeSenderKeyMessageBody } from './codec/senderKeyMessages.js';
import { deserializeSenderKeyRecord, serializeSenderKeyRecord } from './codec/senderKeyRecord.js';
import { createSenderKeyDistributionMessage, groupDecrypt, groupEncrypt, processSenderKeyDistributionMessage } from './groupCipher.js';
import { MAX_FORWARD_JUMPS, MAX_SENDER_KEY_STATES, MAX_SENDER_MESSAGE_KEYS } from './limits.js';
import { nextSenderChainKey, senderMessageKeySeed, deriveSenderMessageKeys, type SenderChainKey } from './senderKeys/senderChainKey.js';
import { InMemorySenderKeyStore, type SenderKeyStore } from './stores.js';

const provider = createNodeProvider();
const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array) => new TextDecoder().decode(b);
const GROUP = '0f0e0d0c-0b0a-4908-8706-050403020100';
const alice: ProtocolAddress = { name: 'alice', deviceId: 1 };
const carol: ProtocolAddress = { name: 'carol', deviceId: 2 };

/** A sender with its own store, and a receiver that has processed its distribution. */
async function setUp(sender: ProtocolAddress = alice, receiver: SenderKeyStore = new InMemorySenderKeyStore()) {
  const senderStore = new InMemorySenderKeyStore();
  const skdm = await createSenderKeyDistributionMessage(provider, senderStore, sender, GROUP);
  await processSenderKeyDistributionMessage(receiver, sender, skdm.serialized);
  const send = async (s: string) => (await groupEncrypt(provider, senderStore, sender, GROUP, text(s))).serialized;
  return { senderStore, receiver, skdm, send };
}

async function snapshot(store: SenderKeyStore, sender: ProtocolAddress, group = GROUP): Promise<Uint8Array | undefined> {
  const record = await store.loadSenderKey(sender, group);
  return record === undefined ? undefined : serializeSenderKeyRecord(record).expose();
}

/** The sender's chain key at `iteration`, stepped from its distribution. */
async function chainAt(start: SenderChainKey, iteration: number): Promise<SenderChainKey> {
  let chain = start;
  while (chain.iteration < iteration) chain = await nextSenderChainKey(provider, chain);
  return chain;
}

/** A message signed by the sender's real signing key at any iteration, with any ciphertext. */
async function forged(senderStore: SenderKeyStore, iteration: number, ciphertext?: Uint8Array): Promise<Uint8Array> {
  const state = (await senderStore.loadSenderKey(alice, GROUP))!.states[0]!;
  let body = ciphertext;
  if (body === undefined) {
    const keys = await deriveSenderMessageKeys(provider, await senderMessageKeySeed(provider, await chainAt(state.chainKey, iteration)));
    body = await provider.aes256CbcEncrypt(keys.cipherKey, keys.iv, text(`at ${iteration}`));
  }
  const message = await encodeSenderKeyMessage(provider, { distributionId: GROUP, chainId: state.chainId, iteration, ciphertext: body }, state.signingKey.privateKey!);
  return message.serialized;
}

describe('group cipher', () => {
  it('SECURITY-TESTS row 7: decrypts in any order, each message exactly once', async () => {
    const { receiver, send } = await setUp();
    const bodies = [];
    for (let i = 0; i < 10; i++) bodies.push(await send(`m${i}`));
    for (const i of [3, 0, 9, 1, 2, 8, 4, 7, 5, 6]) expect(read(await groupDecrypt(provider, receiver, alice, bodies[i]!))).toBe(`m${i}`);
    for (const body of bodies) expect(await asyncOutcome(() => groupDecrypt(provider, receiver, alice, body))).toBe('DUPLICATE_MESSAGE');
  });

  it('shows a message delivered twice at once only once', async () => {
    const { receiver, send } = await setUp();
    const body = await send('once');
    const outcomes = await Promise.all([1, 2, 3].map(() => asyncOutcome(() => groupDecrypt(provider, receiver, alice, body))));
    expect(outcomes.sort()).toEqual(['DUPLICATE_MESSAGE', 'DUPLICATE_MESSAGE', 'resolved']);
  });

  it(`SECURITY-TESTS row 13: accepts a counter exactly ${MAX_FORWARD_JUMPS} ahead, refuses one more without deriving a key, keeps skipped keys bounded`, async () => {
    const { senderStore, receiver } = await setUp();
    const before = await snapshot(receiver, alice);
    const tooFar = await forged(senderStore, MAX_FORWARD_JUMPS + 1);
    let hmacs = 0;
    const watched: CryptoProvider = Object.assign(Object.create(provider) as CryptoProvider, {
      hmacSha256: (...args: Parameters<CryptoProvider['hmacSha256']>) => {
        hmacs++;
        return provider.hmacSha256(...args);
      },
    });
    expect(await asyncOutcome(() => groupDecrypt(watched, receiver, alice, tooFar))).toBe('TOO_FAR_IN_FUTURE');
    expect(hmacs).toBe(0);
    expect(await snapshot(receiver, alice)).toEqual(before);
    const farthest = await forged(senderStore, MAX_FORWARD_JUMPS);
    expect(read(await groupDecrypt(provider, receiver, alice, farthest))).toBe(`at ${MAX_FORWARD_JUMPS}`);
    const state = (await receiver.loadSenderKey(alice, GROUP))!.states[0]!;
    expect(state.chainKey.iteration).toBe(MAX_FORWARD_JUMPS + 1);
    expect(state.skippedKeys).toHaveLength(MAX_SENDER_MESSAGE_KEYS);
    // The oldest skipped keys were dropped: their messages now count as used.
    expect(await asyncOutcome(async () => groupDecrypt(provider, receiver, alice, await forged(senderStore, 0)))).toBe('DUPLICATE_MESSAGE');
    const kept = MAX_FORWARD_JUMPS - MAX_SENDER_MESSAGE_KEYS;
    expect(read(await groupDecrypt(provider, receiver, alice, await forged(senderStore, kept)))).toBe(`at ${kept}`);
  });

  it('SECURITY-TESTS row 12: refuses every single-bit corruption of a message and changes nothing', async () => {
    const { receiver, send } = await setUp();
    const body = await send('tamper with me');
    const before = await snapshot(receiver, alice);
    const seen = new Set<string>();
    for (let bit = 0; bit < body.length * 8; bit++) {
      const corrupted = body.slice();
      corrupted[bit >> 3]! ^= 1 << (bit & 7);
      const result = await asyncOutcome(() => groupDecrypt(provider, receiver, alice, corrupted));
      expect(result).not.toBe('resolved');
      seen.add(result);
    }
    expect([...seen].sort()).toEqual(expect.arrayContaining(['INVALID_ENCODING', 'INVALID_SIGNATURE']));
    expect(await snapshot(receiver, alice)).toEqual(before);
    expect(read(await groupDecrypt(provider, receiver, alice, body))).toBe('tamper with me');
  });

  it('refuses a signed message whose ciphertext does not decrypt, and the genuine one still decrypts', async () => {
    const { senderStore, receiver, send } = await setUp();
    const before = await snapshot(receiver, alice);
    const garbage = await forged(senderStore, 0, new Uint8Array(32).fill(9));
    expect(await asyncOutcome(() => groupDecrypt(provider, receiver, alice, garbage))).toBe('INVALID_MESSAGE');
    expect(await snapshot(receiver, alice)).toEqual(before);
    expect(read(await groupDecrypt(provider, receiver, alice, await send('genuine')))).toBe('genuine');
  });

  it("does not open one sender's messages with another's key, even under the same chain id", async () => {
    const receiver = new InMemorySenderKeyStore();
    const fromAlice = await setUp(alice, receiver);
    const fromCarol = await setUp(carol, receiver);
    const aliceMessage = await fromAlice.send('from alice');
    expect(await asyncOutcome(() => groupDecrypt(provider, receiver, carol, aliceMessage))).toBe('NO_SESSION');
    // Carol distributes a key of hers under Alice's chain id: Alice's messages still fail her signature.
    const impostor = encodeSenderKeyDistributionMessage({
      distributionId: GROUP,
      chainId: fromAlice.skdm.chainId,
      iteration: 0,
      chainKey: fromAlice.skdm.chainKey,
      signingKey: fromCarol.skdm.signingKey,
    });
    await processSenderKeyDistributionMessage(receiver, carol, impostor.serialized);
    expect(await asyncOutcome(() => groupDecrypt(provider, receiver, carol, aliceMessage))).toBe('INVALID_SIGNATURE');
    expect(read(await groupDecrypt(provider, receiver, alice, aliceMessage))).toBe('from alice');
    expect(read(await groupDecrypt(provider, receiver, carol, await fromCarol.send('from carol')))).toBe('from carol');
  });

  it('keeps a held chain when its distribution is replayed, so used keys stay used', async () => {
    const { receiver, skdm, send } = await setUp();
    const body = await send('first');
    await groupDecrypt(provider, receiver, alice, body);
    await processSenderKeyDistributionMessage(receiver, alice, skdm.serialized);
    expect(await asyncOutcome(() => groupDecrypt(provider, receiver, alice, body))).toBe('DUPLICATE_MESSAGE');
  });

  it(`keeps at most ${MAX_SENDER_KEY_STATES} states per sender and distribution, dropping the oldest`, async () => {
    const receiver = new InMemorySenderKeyStore();
    const senders = [];
    for (let i = 0; i <= MAX_SENDER_KEY_STATES; i++) {
      const store = new InMemorySenderKeyStore();
      const skdm = await createSenderKeyDistributionMessage(provider, store, alice, GROUP);
      await processSenderKeyDistributionMessage(receiver, alice, skdm.serialized);
      senders.push(store);
    }
    expect((await receiver.loadSenderKey(alice, GROUP))!.states).toHaveLength(MAX_SENDER_KEY_STATES);
    const oldest = await groupEncrypt(provider, senders[0]!, alice, GROUP, text('old'));
    expect(await asyncOutcome(() => groupDecrypt(provider, receiver, alice, oldest.serialized))).toBe('NO_SESSION');
    const newest = await groupEncrypt(provider, senders[MAX_SENDER_KEY_STATES]!, alice, GROUP, text('new'));
    expect(read(await groupDecrypt(provider, receiver, alice, newest.serialized))).toBe('new');
  });

  it('SECURITY-TESTS row 4: refuses a 1:1 message as a group message and a group message as a 1:1 message', async () => {
    const { receiver, send } = await setUp();
    const group = await send('group');
    // 0x33 reads as a version 3 (pre-Kyber) SignalMessage, which is refused.
    expect(await asyncOutcome(async () => decodeSignalMessage(group))).toBe('UNSUPPORTED_VERSION');
    const [a, b] = [await parleyPeer(provider, 'alice'), await parleyPeer(provider, 'bob')];
    await a.startSession(b, await b.bundle());
    const preKey = await a.encrypt(b.address, text('hi'));
    await b.decrypt(a.address, preKey);
    const whisper = await b.encrypt(a.address, text('hi back'));
    const before = await snapshot(receiver, alice);
    for (const oneToOne of [preKey, whisper]) {
      expect(await asyncOutcome(() => groupDecrypt(provider, receiver, alice, oneToOne.body))).toBe('INVALID_ENCODING');
    }
    expect(await snapshot(receiver, alice)).toEqual(before);
  });

  it('SECURITY-TESTS row 8: a group message moved to another group of the same sender fails its signature, and changes neither group', async () => {
    const other = 'a0b1c2d3-e4f5-4a6b-8c7d-8e9fa0b1c2d3';
    const [senderStore, receiver] = [new InMemorySenderKeyStore(), new InMemorySenderKeyStore()];
    for (const group of [GROUP, other]) {
      await processSenderKeyDistributionMessage(receiver, alice, (await createSenderKeyDistributionMessage(provider, senderStore, alice, group)).serialized);
    }
    const genuine = await groupEncrypt(provider, senderStore, alice, GROUP, text('for the first group'));
    const { chainId } = (await receiver.loadSenderKey(alice, other))!.states[0]!;
    // The distribution id (and chain id) are signed: rewritten to name the other group, the message keeps a signature over the old ones.
    const moved = concatBytes(encodeSenderKeyMessageBody({ ...genuine, distributionId: other, chainId }), genuine.signature);
    const before = [await snapshot(receiver, alice), await snapshot(receiver, alice, other)];
    expect(await asyncOutcome(() => groupDecrypt(provider, receiver, alice, moved))).toBe('INVALID_SIGNATURE');
    expect([await snapshot(receiver, alice), await snapshot(receiver, alice, other)]).toEqual(before);
    expect(read(await groupDecrypt(provider, receiver, alice, genuine.serialized))).toBe('for the first group');
  });

  it('refuses to encrypt without a sender key, or with one received from someone else', async () => {
    const { receiver } = await setUp();
    const empty = new InMemorySenderKeyStore();
    expect(await asyncOutcome(() => groupEncrypt(provider, empty, alice, GROUP, text('x')))).toBe('NO_SESSION');
    expect(await asyncOutcome(() => groupEncrypt(provider, receiver, alice, GROUP, text('x')))).toBe('INVALID_STATE');
    await expect(groupEncrypt(provider, empty, alice, 'not-a-uuid', text('x'))).rejects.toThrow(RangeError);
  });

  it('distributes the same key again until it is replaced, at its current iteration', async () => {
    const { senderStore, skdm, send } = await setUp();
    await send('one');
    const again = await createSenderKeyDistributionMessage(provider, senderStore, alice, GROUP);
    expect(again.chainId).toBe(skdm.chainId);
    expect(again.signingKey).toEqual(skdm.signingKey);
    expect(again.iteration).toBe(1);
    expect(again.chainKey).toBeInstanceOf(SecretBytes);
    // The message holds a copy: wiping it leaves the sender able to send.
    again.chainKey.wipe();
    skdm.chainKey.wipe();
    expect(await send('two')).toBeInstanceOf(Uint8Array);
  });
});

type Step =
  | { readonly kind: 'send' }
  | { readonly kind: 'deliver'; readonly pick: number }
  | { readonly kind: 'replay'; readonly pick: number }
  | { readonly kind: 'restart' };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'send' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('deliver' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('replay' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
);

describe('group cipher model', () => {
  it('decrypts every message exactly once, in any order, across restarts from serialized records', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 60 }), async (steps) => {
        const { receiver: first, send } = await setUp();
        let receiver: SenderKeyStore = first;
        const inFlight: { body: Uint8Array; plaintext: string }[] = [];
        const delivered: { body: Uint8Array; plaintext: string }[] = [];
        let sent = 0;
        for (const s of steps) {
          if (s.kind === 'send') {
            const plaintext = `m${sent++}`;
            inFlight.push({ body: await send(plaintext), plaintext });
          } else if (s.kind === 'deliver' && inFlight.length > 0) {
            const [message] = inFlight.splice(s.pick % inFlight.length, 1);
            expect(read(await groupDecrypt(provider, receiver, alice, message!.body))).toBe(message!.plaintext);
            delivered.push(message!);
          } else if (s.kind === 'replay' && delivered.length > 0) {
            const message = delivered[s.pick % delivered.length]!;
            const before = await snapshot(receiver, alice);
            expect(await asyncOutcome(() => groupDecrypt(provider, receiver, alice, message.body))).toBe('DUPLICATE_MESSAGE');
            expect(await snapshot(receiver, alice)).toEqual(before);
          } else if (s.kind === 'restart') {
            const restored = new InMemorySenderKeyStore();
            await restored.storeSenderKey(alice, GROUP, deserializeSenderKeyRecord((await snapshot(receiver, alice))!));
            receiver = restored;
          }
        }
        for (const message of inFlight) expect(read(await groupDecrypt(provider, receiver, alice, message.body))).toBe(message.plaintext);
        expect((await receiver.loadSenderKey(alice, GROUP))!.states[0]!.skippedKeys).toHaveLength(0);
      }),
      { numRuns: 40 },
    );
  });
});

describe('group cipher across providers', () => {
  for (const sending of providerCases) {
    for (const receiving of providerCases) {
      it(`${sending.label} sender, ${receiving.label} receiver`, async () => {
        const [tx, rx] = [sending.make(), receiving.make()];
        const senderStore = new InMemorySenderKeyStore();
        const receiver = new InMemorySenderKeyStore();
        const skdm = await createSenderKeyDistributionMessage(tx, senderStore, alice, GROUP);
        await processSenderKeyDistributionMessage(receiver, alice, skdm.serialized);
        const bodies = [];
        for (let i = 0; i < 3; i++) bodies.push((await groupEncrypt(tx, senderStore, alice, GROUP, text(`p${i}`))).serialized);
        for (const i of [2, 0, 1]) expect(read(await groupDecrypt(rx, receiver, alice, bodies[i]!))).toBe(`p${i}`);
      });
    }
  }
});
