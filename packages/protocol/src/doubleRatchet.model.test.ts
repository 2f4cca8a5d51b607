/**
 * Model-based property tests of two Parley devices (fast-check): random
 * schedules of send, deliver (in any order), drop, duplicate, restart (session
 * records serialized and read back), churn (bursts of DH ratchet steps) and
 * late delivery beyond the limits.
 *
 * The model is the set of messages in flight with their plaintexts, and for
 * each receiver the peer ratchet keys it has seen. It predicts exactly which
 * deliveries must succeed: a message whose ratchet key is new, or among the
 * MAX_RECEIVER_CHAINS newest the receiver has seen. Properties:
 * - every such delivery decrypts exactly once, to its plaintext;
 * - a second delivery is refused as DUPLICATE_MESSAGE;
 * - a message past the limits fails with a typed error and changes nothing;
 * - stored skipped keys and receiver chains stay within their bounds.
 */
import { createNodeProvider } from '@parley/crypto/node';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { parleyPeer, type ParleyPeer } from '../../../testing/peers.js';
import {
  decodePreKeySignalMessage,
  decodeSignalMessage,
  deserializeSessionRecord,
  isProtocolError,
  limits,
  MessageType,
  serializeSessionRecord,
  skippedKeyCount,
  type CiphertextMessage,
} from './index.js';

const provider = createNodeProvider();
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Envelope {
  readonly message: CiphertextMessage;
  readonly plaintext: string;
  readonly ratchetKey: string;
}

const ratchetKeyOf = (m: CiphertextMessage): string =>
  Buffer.from(
    (m.type === MessageType.PreKey ? decodePreKeySignalMessage(m.body).message : decodeSignalMessage(m.body)).ratchetKey,
  ).toString('hex');

type Op =
  | { kind: 'send'; from: 0 | 1 }
  | { kind: 'deliver' | 'drop' | 'duplicate' | 'late'; to: 0 | 1; pick: number }
  | { kind: 'restart'; who: 0 | 1 }
  /** Three quick exchanges each way: six DH ratchet steps, which push messages still in flight past the limits. */
  | { kind: 'churn' };

const side = fc.constantFrom<0 | 1>(0, 1);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('send' as const), from: side }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('deliver' as const), to: side, pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), to: side, pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), to: side, pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('late' as const), to: side, pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), who: side }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('churn' as const) }) },
);

/** What the runs exercised, so that a schedule generator gone quiet fails the test. */
const exercised = { delivered: 0, duplicates: 0, late: 0, restarts: 0 };

class World {
  readonly inFlight: [Envelope[], Envelope[]] = [[], []]; // indexed by receiver
  readonly delivered: [Envelope[], Envelope[]] = [[], []];
  readonly expired: [Envelope[], Envelope[]] = [[], []];
  /** Peer ratchet keys each receiver has seen, first-seen order. */
  readonly seen: [string[], string[]] = [[], []];
  sent = 0;

  constructor(readonly peers: [ParleyPeer, ParleyPeer]) {}

  deliverable(to: 0 | 1, envelope: Envelope): boolean {
    const seen = this.seen[to];
    const index = seen.indexOf(envelope.ratchetKey);
    return index < 0 || index >= seen.length - limits.MAX_RECEIVER_CHAINS;
  }

  /** Moves messages the receiver can no longer open (their chain was dropped) out of flight. */
  expire(to: 0 | 1): void {
    const keep: Envelope[] = [];
    for (const envelope of this.inFlight[to]) (this.deliverable(to, envelope) ? keep : this.expired[to]).push(envelope);
    this.inFlight[to].splice(0, this.inFlight[to].length, ...keep);
  }

  async send(from: 0 | 1): Promise<void> {
    const to = (1 - from) as 0 | 1;
    // Bob has a session only once one of Alice's first (prekey) messages has reached him.
    if (from === 1 && this.delivered[1].length === 0) return;
    const plaintext = `message ${this.sent++} from ${from}`;
    const message = await this.peers[from].encrypt(this.peers[to].address, encoder.encode(plaintext));
    this.inFlight[to].push({ message, plaintext, ratchetKey: ratchetKeyOf(message) });
  }

  async deliver(to: 0 | 1, pick: number): Promise<void> {
    const queue = this.inFlight[to];
    if (queue.length === 0) return;
    const [envelope] = queue.splice(pick % queue.length, 1) as [Envelope];
    const from = this.peers[1 - to]!;
    const plaintext = await this.peers[to].decrypt(from.address, envelope.message);
    expect(decoder.decode(plaintext)).toBe(envelope.plaintext);
    this.delivered[to].push(envelope);
    exercised.delivered++;
    if (!this.seen[to].includes(envelope.ratchetKey)) this.seen[to].push(envelope.ratchetKey);
    this.expire(to);
  }

  async refused(to: 0 | 1, envelope: Envelope): Promise<unknown> {
    const from = this.peers[1 - to]!;
    const before = await this.snapshot(to);
    const error = await this.peers[to].decrypt(from.address, envelope.message).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isProtocolError(error), `a refused message must raise a ProtocolError, got ${String(error)}`).toBe(true);
    expect(await this.snapshot(to)).toBe(before);
    return error;
  }

  /** The receiver's whole session record as hex: equal snapshots mean nothing changed. */
  async snapshot(who: 0 | 1): Promise<string> {
    const record = await this.peers[who].stores.sessions.loadSession(this.peers[1 - who]!.address);
    return record === undefined ? '' : Buffer.from(serializeSessionRecord(record).expose()).toString('hex');
  }

  async restart(who: 0 | 1): Promise<void> {
    const { sessions } = this.peers[who].stores;
    const address = this.peers[1 - who]!.address;
    const record = await sessions.loadSession(address);
    if (record !== undefined) await sessions.storeSession(address, deserializeSessionRecord(serializeSessionRecord(record).expose()));
  }

  async checkBounds(): Promise<void> {
    for (const who of [0, 1] as const) {
      const record = await this.peers[who].stores.sessions.loadSession(this.peers[1 - who]!.address);
      for (const state of [record?.current, ...(record?.previous ?? [])]) {
        if (state === undefined) continue;
        expect(state.receiverChains.length).toBeLessThanOrEqual(limits.MAX_RECEIVER_CHAINS);
        for (const chain of state.receiverChains) expect(chain.skipped.size).toBeLessThanOrEqual(limits.MAX_MESSAGE_KEYS);
        expect(skippedKeyCount(state)).toBeLessThanOrEqual(limits.MAX_SKIPPED_KEYS_PER_SESSION);
      }
    }
  }

  async run(o: Op): Promise<void> {
    switch (o.kind) {
      case 'send':
        return this.send(o.from);
      case 'deliver':
        return this.deliver(o.to, o.pick);
      case 'drop':
        this.inFlight[o.to].splice(o.pick % Math.max(this.inFlight[o.to].length, 1), 1);
        return;
      case 'duplicate': {
        const done = this.delivered[o.to];
        if (done.length === 0) return;
        const envelope = done[o.pick % done.length]!;
        const error = await this.refused(o.to, envelope);
        // While its chain is held the receiver knows it as a duplicate; after that it is merely undecryptable.
        if (this.deliverable(o.to, envelope)) expect(isProtocolError(error, 'DUPLICATE_MESSAGE')).toBe(true);
        exercised.duplicates++;
        return;
      }
      case 'late': {
        const late = this.expired[o.to];
        if (late.length === 0) return;
        await this.refused(o.to, late[o.pick % late.length]!);
        exercised.late++;
        return;
      }
      case 'restart':
        exercised.restarts++;
        return this.restart(o.who);
      case 'churn':
        for (let i = 0; i < 3; i++) {
          for (const from of [0, 1] as const) {
            await this.send(from);
            const to = (1 - from) as 0 | 1;
            if (this.inFlight[to].length > 0) await this.deliver(to, this.inFlight[to].length - 1);
          }
        }
        return;
    }
  }
}

/** Alice has started a session from Bob's bundle; nothing has been sent yet. */
async function newWorld(): Promise<World> {
  const alice = await parleyPeer(provider, 'alice', 1, 1);
  const bob = await parleyPeer(provider, 'bob', 1, 1);
  await alice.startSession(bob, await bob.bundle());
  return new World([alice, bob]);
}

describe('Double Ratchet model', () => {
  it('delivers every message exactly once, refuses duplicates and late messages, and stays within bounds', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 40, maxLength: 300, size: 'max' }), async (ops) => {
        const world = await newWorld();
        for (const o of ops) {
          await world.run(o);
          await world.checkBounds();
        }
        // Drain: everything still in flight arrives.
        for (const to of [0, 1] as const) while (world.inFlight[to].length > 0) await world.deliver(to, 0);
        const received = world.delivered[0].length + world.delivered[1].length;
        const expired = world.expired[0].length + world.expired[1].length;
        expect(received + expired).toBeLessThanOrEqual(world.sent);
      }),
      { numRuns: 60 },
    );
    console.log('model runs exercised', exercised);
    expect(exercised.delivered).toBeGreaterThan(1_000);
    expect(exercised.duplicates).toBeGreaterThan(50);
    expect(exercised.late).toBeGreaterThan(0);
    expect(exercised.restarts).toBeGreaterThan(50);
  });

  it('keeps at most MAX_MESSAGE_KEYS skipped keys per chain, dropping the oldest', async () => {
    const [alice, bob] = (await newWorld()).peers;
    const first = await alice.encrypt(bob.address, encoder.encode('first'));
    await bob.decrypt(alice.address, first);
    const held: CiphertextMessage[] = [];
    for (let i = 0; i < limits.MAX_MESSAGE_KEYS + 10; i++) held.push(await alice.encrypt(bob.address, encoder.encode(`m${i}`)));
    // Deliver the last one first: every earlier counter becomes a skipped key.
    await bob.decrypt(alice.address, held.at(-1)!);
    const state = (await bob.stores.sessions.loadSession(alice.address))!.current!;
    expect(skippedKeyCount(state)).toBe(limits.MAX_MESSAGE_KEYS);
    // The oldest ten were dropped: they no longer open; the newest skipped ones still do.
    expect(isProtocolError(await bob.decrypt(alice.address, held[0]!).catch((e: unknown) => e))).toBe(true);
    expect(decoder.decode(await bob.decrypt(alice.address, held[10]!))).toBe('m10');
    expect(decoder.decode(await bob.decrypt(alice.address, held.at(-2)!))).toBe(`m${limits.MAX_MESSAGE_KEYS + 8}`);
  });
});
