/**
 * Interop with libsignal-client 0.90 as a live peer: PQXDH sessions started in
 * both directions (each side consuming the other's bundle, so Kyber
 * ciphertexts cross both ways), long randomly interleaved conversations with
 * many DH ratchet steps, reordering within the limits, and duplicates refused
 * on both sides.
 */
import { createNodeProvider } from '@parley/crypto/node';
import { describe, expect, it } from 'vitest';

import { libsignalPeer, parleyPeer, type Peer } from '../../../testing/peers.js';
import { seededRandom } from '../../../testing/random.js';
import { isProtocolError, MessageType, type CiphertextMessage } from './index.js';

const provider = createNodeProvider();
const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array) => new TextDecoder().decode(b);

async function expectRejected(attempt: Promise<unknown>): Promise<unknown> {
  const error = await attempt.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'a duplicate must be refused').toBeDefined();
  return error;
}

/** Alice starts from Bob's bundle; both then talk. */
async function startAndGreet(alice: Peer, bob: Peer, withOneTimePreKey: boolean): Promise<void> {
  await alice.startSession(bob, await bob.bundle({ withOneTimePreKey }));
  const first = await alice.encrypt(bob.address, text('hello from alice'));
  expect(first.type).toBe(MessageType.PreKey);
  expect(read(await bob.decrypt(alice.address, first))).toBe('hello from alice');
  const reply = await bob.encrypt(alice.address, text('hello from bob'));
  expect(reply.type).toBe(MessageType.Whisper);
  expect(read(await alice.decrypt(bob.address, reply))).toBe('hello from bob');
  // Once Bob has answered, Alice's messages are plain Whisper messages.
  expect((await alice.encrypt(bob.address, text('again'))).type).toBe(MessageType.Whisper);
}

describe('libsignal-client 0.90 interop: session setup', () => {
  for (const withOneTimePreKey of [true, false]) {
    const label = withOneTimePreKey ? 'with a one-time prekey' : 'with the signed and Kyber prekeys only';
    it(`Parley starts a session from libsignal's bundle, ${label}`, async () => {
      const alice = await parleyPeer(provider, 'alice');
      const bob = libsignalPeer('bob');
      await startAndGreet(alice, bob, withOneTimePreKey);
      if (withOneTimePreKey) expect(bob.stores.preKeys.has(1)).toBe(false);
    });

    it(`libsignal starts a session from Parley's bundle, ${label}`, async () => {
      const alice = libsignalPeer('alice');
      const bob = await parleyPeer(provider, 'bob');
      await startAndGreet(alice, bob, withOneTimePreKey);
      expect(bob.stores.preKeys.preKeyCount).toBe(withOneTimePreKey ? 3 : 4);
    });
  }
});

interface InFlight {
  readonly message: CiphertextMessage;
  readonly plaintext: string;
}

/**
 * A seeded random conversation: each step sends one way or the other, or
 * delivers one of the `reorderWindow` oldest messages in flight (small enough
 * that no message outlives MAX_RECEIVER_CHAINS ratchet steps); 5% of
 * deliveries are replayed and must be refused. Returns how often the sending
 * direction changed (each change is a DH ratchet step).
 */
async function converse(parley: Peer, lib: Peer, steps: number, seed: number, reorderWindow: number): Promise<{ ratchetSteps: number; toLib: number; toParley: number }> {
  const random = seededRandom(seed);
  const toLib: InFlight[] = [];
  const toParley: InFlight[] = [];
  let sent = 0;
  let [sentToLib, sentToParley] = [0, 0];
  let ratchetSteps = 0;
  let lastDirection = '';
  const deliver = async (queue: InFlight[], receiver: Peer, sender: Peer) => {
    const index = Math.floor(random() * Math.min(queue.length, reorderWindow));
    const [entry] = queue.splice(index, 1);
    expect(read(await receiver.decrypt(sender.address, entry!.message))).toBe(entry!.plaintext);
    if (random() < 0.05) await expectRejected(receiver.decrypt(sender.address, entry!.message));
  };
  for (let step = 0; step < steps; step++) {
    const roll = random();
    if (roll < 0.3) {
      const plaintext = `p→l ${sent++}`;
      toLib.push({ message: await parley.encrypt(lib.address, text(plaintext)), plaintext });
      sentToLib++;
      if (lastDirection !== 'p') ratchetSteps++;
      lastDirection = 'p';
    } else if (roll < 0.6) {
      const plaintext = `l→p ${sent++}`;
      toParley.push({ message: await lib.encrypt(parley.address, text(plaintext)), plaintext });
      sentToParley++;
      if (lastDirection !== 'l') ratchetSteps++;
      lastDirection = 'l';
    } else if (roll < 0.8 && toLib.length > 0) {
      await deliver(toLib, lib, parley);
    } else if (toParley.length > 0) {
      await deliver(toParley, parley, lib);
    }
  }
  while (toLib.length > 0) await deliver(toLib, lib, parley);
  while (toParley.length > 0) await deliver(toParley, parley, lib);
  return { ratchetSteps, toLib: sentToLib, toParley: sentToParley };
}

describe('libsignal-client 0.90 interop: long conversations', () => {
  it('carries over 1,000 messages each way, randomly interleaved and reordered, with many DH ratchet steps', async () => {
    const parley = await parleyPeer(provider, 'parley');
    const lib = libsignalPeer('lib');
    await startAndGreet(parley, lib, true);
    const { ratchetSteps, toLib, toParley } = await converse(parley, lib, 7_000, 42, 8);
    expect(toLib).toBeGreaterThanOrEqual(1_000);
    expect(toParley).toBeGreaterThanOrEqual(1_000);
    expect(ratchetSteps).toBeGreaterThan(500);
  });

  it('converses the same way when libsignal started the session', async () => {
    const lib = libsignalPeer('lib');
    const parley = await parleyPeer(provider, 'parley');
    await startAndGreet(lib, parley, true);
    await converse(parley, lib, 3_000, 7, 8);
  });

  it('refuses duplicates on both sides, including a replayed first message', async () => {
    const parley = await parleyPeer(provider, 'parley');
    const lib = libsignalPeer('lib');
    await parley.startSession(lib, await lib.bundle());
    const first = await lib.encrypt(parley.address, text('x')).catch(() => undefined);
    expect(first).toBeUndefined(); // libsignal has no session yet: it never received our bundle
    const fromParley = await parley.encrypt(lib.address, text('first'));
    await lib.decrypt(parley.address, fromParley);
    await expectRejected(lib.decrypt(parley.address, fromParley));
    const fromLib = await lib.encrypt(parley.address, text('reply'));
    await parley.decrypt(lib.address, fromLib);
    const error = await expectRejected(parley.decrypt(lib.address, fromLib));
    expect(isProtocolError(error, 'DUPLICATE_MESSAGE')).toBe(true);

    // libsignal's first message, replayed to Parley after the session is established.
    const lib2 = libsignalPeer('lib2');
    await lib2.startSession(parley, await parley.bundle());
    const preKeyMessage = await lib2.encrypt(parley.address, text('only once'));
    expect(read(await parley.decrypt(lib2.address, preKeyMessage))).toBe('only once');
    const replay = await expectRejected(parley.decrypt(lib2.address, preKeyMessage));
    expect(isProtocolError(replay, 'DUPLICATE_MESSAGE')).toBe(true);
  });
});
