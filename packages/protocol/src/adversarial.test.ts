/**
 * Named attacks from ../shared/SECURITY-TESTS.md, rows 3, 8 and 9–16, replayed
 * against Parley's protocol layer. Each test is named after its row.
 */
import { fromHex, KemType, serializePublicKey, SecretBytes, type CryptoProvider } from '@parley/crypto';
import { createNodeProvider } from '@parley/crypto/node';
import { describe, expect, it } from 'vitest';

import { LOW_ORDER_POINTS } from '../../../testing/curve25519.js';
import { NOW, parleyPeer, type ParleyPeer } from '../../../testing/peers.js';
import { encodePreKeySignalMessage, encodeSignalMessage } from './codec/messages.js';
import {
  decodePreKeySignalMessage,
  generateKyberPreKey,
  generatePreKeys,
  isProtocolError,
  limits,
  MessageType,
  processPreKeyBundle,
  serializeSessionRecord,
  type CiphertextMessage,
  type PreKeyBundle,
  type ProtocolErrorCode,
} from './index.js';

const provider = createNodeProvider();
const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array) => new TextDecoder().decode(b);
const errorOf = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

/** Everything Bob's stores hold about Alice, to prove a failure changed nothing. */
async function snapshot(peer: ParleyPeer, other: ParleyPeer): Promise<string> {
  const record = await peer.stores.sessions.loadSession(other.address);
  const session = record === undefined ? '' : Buffer.from(serializeSessionRecord(record).expose()).toString('hex');
  const identity = await peer.stores.identities.getIdentity(other.address);
  return `${session}|${identity === undefined ? '' : Buffer.from(identity).toString('hex')}|${peer.stores.preKeys.preKeyCount}`;
}

async function pair(): Promise<[ParleyPeer, ParleyPeer]> {
  return [await parleyPeer(provider, 'alice'), await parleyPeer(provider, 'bob')];
}

async function established(): Promise<[ParleyPeer, ParleyPeer]> {
  const [alice, bob] = await pair();
  await alice.startSession(bob, await bob.bundle());
  await bob.decrypt(alice.address, await alice.encrypt(bob.address, text('hi')));
  await alice.decrypt(bob.address, await bob.encrypt(alice.address, text('hi back')));
  return [alice, bob];
}

const flipped = (bytes: Uint8Array, bit: number): Uint8Array => {
  const copy = bytes.slice();
  copy[bit >> 3]! ^= 1 << (bit & 7);
  return copy;
};

describe('SECURITY-TESTS row 3: key confusion', () => {
  it('refuses a key in the place of a key of another kind, even under the signature its identity made for it (row 3)', async () => {
    const [alice, bob] = await pair();
    const bundle = await bob.bundle();
    const confusions: [string, Partial<PreKeyBundle>, ProtocolErrorCode][] = [
      ['the signed prekey as the Kyber prekey', { kyberPreKey: bundle.signedPreKey, kyberPreKeySignature: bundle.signedPreKeySignature }, 'INVALID_KEY'],
      ['the Kyber prekey as the signed prekey', { signedPreKey: bundle.kyberPreKey, signedPreKeySignature: bundle.kyberPreKeySignature }, 'INVALID_KEY'],
      ['the Kyber prekey as the one-time prekey', { preKey: bundle.kyberPreKey }, 'INVALID_KEY'],
      ['the signed prekey as the identity key', { identityKey: bundle.signedPreKey }, 'INVALID_SIGNATURE'],
      ['the Kyber prekey as the identity key', { identityKey: bundle.kyberPreKey }, 'INVALID_KEY'],
    ];
    for (const [confusion, swap, code] of confusions) {
      expect(isProtocolError(await errorOf(alice.startSession(bob, { ...bundle, ...swap })), code), confusion).toBe(true);
      expect(await alice.stores.sessions.loadSession(bob.address), confusion).toBeUndefined();
      expect(await alice.stores.identities.getIdentity(bob.address), confusion).toBeUndefined();
    }
  });

  it('keeps key ids apart by kind: a one-time, a signed and a Kyber prekey may share an id, and none is ever taken for another (row 3)', async () => {
    const [alice, bob] = await pair();
    const honest = await bob.bundle({ withOneTimePreKey: false });
    const shared = honest.signedPreKeyId;
    const oneTime = (await generatePreKeys(provider, shared, 1))[0]!;
    const kyber = await generateKyberPreKey(provider, bob.identity, shared, NOW);
    bob.stores.preKeys.storePreKey(oneTime);
    bob.stores.preKeys.storeKyberPreKey(kyber);
    const sharing: PreKeyBundle = {
      ...honest,
      preKeyId: shared,
      preKey: serializePublicKey(oneTime.publicKey),
      kyberPreKeyId: shared,
      kyberPreKey: kyber.publicKey,
      kyberPreKeySignature: kyber.signature,
    };
    await alice.startSession(bob, sharing);
    expect(read(await bob.decrypt(alice.address, await alice.encrypt(bob.address, text('three keys, one id'))))).toBe('three keys, one id');
    // The one-time keys are used up; the signed prekey of the same id stays.
    expect(await bob.stores.preKeys.loadPreKey(shared)).toBeUndefined();
    expect(await bob.stores.preKeys.loadKyberPreKey(shared)).toBeUndefined();
    expect(await bob.stores.preKeys.loadSignedPreKey(shared)).toBeDefined();

    // A server offering the signed prekey as a one-time prekey, under its own id: it never stands in for one.
    const carol = await parleyPeer(provider, 'carol');
    await carol.startSession(bob, { ...honest, preKeyId: shared, preKey: honest.signedPreKey });
    const before = await snapshot(bob, carol);
    const error = await errorOf(bob.decrypt(carol.address, await carol.encrypt(bob.address, text('x'))));
    expect(isProtocolError(error, 'UNKNOWN_PREKEY')).toBe(true);
    expect(await snapshot(bob, carol)).toBe(before);
  });
});

describe('SECURITY-TESTS row 8: cross-context reuse', () => {
  it('a one-to-one message reflected to its own sender never opens there, and changes nothing (row 8)', async () => {
    const [alice, bob] = await pair();
    await alice.startSession(bob, await bob.bundle());
    const reflect = async (from: ParleyPeer, to: ParleyPeer, what: string) => {
      const message = await from.encrypt(to.address, text(what));
      const before = await snapshot(from, to);
      expect(isProtocolError(await errorOf(from.decrypt(to.address, message))), what).toBe(true);
      expect(await snapshot(from, to), what).toBe(before);
      return message;
    };
    // The MAC covers sender and receiver identities in order, and each direction has its own chains.
    const first = await reflect(alice, bob, 'a first message');
    expect(read(await bob.decrypt(alice.address, first))).toBe('a first message');
    await reflect(bob, alice, 'a reply');
    await reflect(alice, bob, 'a later message');
  });
});

describe('SECURITY-TESTS row 9: bad prekey signature', () => {
  for (const field of ['signedPreKeySignature', 'kyberPreKeySignature'] as const) {
    it(`rejects every bit flip of the ${field}`, async () => {
      const [alice, bob] = await pair();
      const bundle = await bob.bundle();
      const accepted: number[] = [];
      for (let bit = 0; bit < 512; bit++) {
        const error = await errorOf(alice.startSession(bob, { ...bundle, [field]: flipped(bundle[field], bit) }));
        if (!isProtocolError(error, 'INVALID_SIGNATURE')) accepted.push(bit);
      }
      expect(accepted).toEqual([]);
      expect(await alice.stores.sessions.loadSession(bob.address)).toBeUndefined();
    });
  }

  it('rejects a signed prekey or Kyber prekey swapped for another, even one the same identity signed elsewhere', async () => {
    const [alice, bob] = await pair();
    const bundle = await bob.bundle();
    const other = await bob.bundle();
    const swaps: Partial<PreKeyBundle>[] = [
      { kyberPreKey: (await provider.kemGenerateKeyPair(0x08)).publicKey },
      { signedPreKey: serializePublicKey((await provider.x25519GenerateKeyPair()).publicKey) },
      // The signed prekey's signature presented as the Kyber prekey's: domain separation by what is signed.
      { kyberPreKeySignature: other.signedPreKeySignature },
    ];
    for (const swap of swaps) {
      expect(isProtocolError(await errorOf(alice.startSession(bob, { ...bundle, ...swap })), 'INVALID_SIGNATURE')).toBe(true);
    }
  });

  it('refuses a first message whose Kyber ciphertext was encapsulated anew, to any key, and changes nothing (row 9)', async () => {
    const [alice, bob] = await pair();
    const another = await generateKyberPreKey(provider, bob.identity, 10, NOW);
    bob.stores.preKeys.storeKyberPreKey(another);
    const bundle = await bob.bundle();
    await alice.startSession(bob, bundle);
    const genuine = await alice.encrypt(bob.address, text('genuine'));
    const parsed = decodePreKeySignalMessage(genuine.body);
    /** The genuine message with its Kyber ciphertext replaced by a fresh encapsulation to `publicKey`, naming `kyberPreKeyId`. */
    const encapsulatedTo = async (publicKey: Uint8Array, kyberPreKeyId = parsed.kyberPreKeyId): Promise<CiphertextMessage> => {
      const { ciphertext } = await provider.kemEncapsulate(publicKey);
      return { type: MessageType.PreKey, body: encodePreKeySignalMessage({ ...parsed, kyberPreKeyId, kyberCiphertext: ciphertext }).serialized };
    };
    const forgeries: [string, CiphertextMessage][] = [
      ["to the attacker's key", await encapsulatedTo((await provider.kemGenerateKeyPair(KemType.Kyber1024)).publicKey)],
      ["to another of Bob's Kyber prekeys", await encapsulatedTo(another.publicKey)],
      ["to another of Bob's Kyber prekeys, named as such", await encapsulatedTo(another.publicKey, another.id)],
      ['to the very Kyber prekey Alice used', await encapsulatedTo(bundle.kyberPreKey)],
    ];
    const before = await snapshot(bob, alice);
    for (const [forgery, message] of forgeries) {
      expect(isProtocolError(await errorOf(bob.decrypt(alice.address, message)), 'INVALID_MESSAGE'), forgery).toBe(true);
      expect(await snapshot(bob, alice), forgery).toBe(before);
      expect(await bob.stores.preKeys.loadKyberPreKey(another.id), forgery).toBeDefined();
    }
    expect(read(await bob.decrypt(alice.address, genuine))).toBe('genuine');
  });
});

describe('SECURITY-TESTS row 10: identity-key substitution', () => {
  it('raises UNTRUSTED_IDENTITY when a bundle for a known address carries a new identity key', async () => {
    const [alice, bob] = await established();
    const impostor = await parleyPeer(provider, 'bob');
    const error = await errorOf(alice.startSession(bob, await impostor.bundle()));
    expect(isProtocolError(error, 'UNTRUSTED_IDENTITY')).toBe(true);
    expect((error as { details: { identityKey: Uint8Array } }).details.identityKey).toEqual(impostor.identityKey);
    // Nothing was bound: Alice still talks to the real Bob.
    expect(read(await bob.decrypt(alice.address, await alice.encrypt(bob.address, text('still you?'))))).toBe('still you?');
  });

  it('raises UNTRUSTED_IDENTITY on a first message from a known address with a new identity, and changes nothing', async () => {
    const [alice, bob] = await established();
    const impostor = await parleyPeer(provider, 'alice');
    await impostor.startSession(bob, await bob.bundle());
    const forged = await impostor.encrypt(bob.address, text('it is me, alice'));
    const before = await snapshot(bob, alice);
    expect(isProtocolError(await errorOf(bob.decrypt(alice.address, forged)), 'UNTRUSTED_IDENTITY')).toBe(true);
    expect(await snapshot(bob, alice)).toBe(before);
  });

  it('accepts the new key only after the caller saves it, then blocks sending no more', async () => {
    const [alice, bob] = await established();
    const reinstalled = await parleyPeer(provider, 'bob');
    const bundle = await reinstalled.bundle();
    expect(isProtocolError(await errorOf(alice.startSession(bob, bundle)), 'UNTRUSTED_IDENTITY')).toBe(true);
    await alice.stores.identities.saveIdentity(bob.address, reinstalled.identityKey);
    await alice.startSession(reinstalled, bundle);
    expect(read(await reinstalled.decrypt(alice.address, await alice.encrypt(bob.address, text('welcome back'))))).toBe('welcome back');
  });
});

describe('SECURITY-TESTS row 11: one-time prekey replay', () => {
  it('never shows a replayed first message twice, and consumes its one-time prekey once', async () => {
    const [alice, bob] = await pair();
    await alice.startSession(bob, await bob.bundle());
    const first = await alice.encrypt(bob.address, text('once'));
    expect(read(await bob.decrypt(alice.address, first))).toBe('once');
    expect(bob.stores.preKeys.preKeyCount).toBe(3);
    for (let i = 0; i < 3; i++) {
      expect(isProtocolError(await errorOf(bob.decrypt(alice.address, first)), 'DUPLICATE_MESSAGE')).toBe(true);
    }
    expect(bob.stores.preKeys.preKeyCount).toBe(3);
  });

  it('refuses a first message naming a one-time prekey that is gone', async () => {
    const [alice, bob] = await pair();
    const bundle = await bob.bundle();
    await bob.stores.preKeys.removePreKey(bundle.preKeyId!);
    await alice.startSession(bob, bundle);
    const error = await errorOf(bob.decrypt(alice.address, await alice.encrypt(bob.address, text('x'))));
    expect(isProtocolError(error, 'UNKNOWN_PREKEY')).toBe(true);
  });

  it('lets a drained account be reached through its signed and last-resort Kyber prekeys', async () => {
    const [alice, bob] = await pair();
    await alice.startSession(bob, await bob.bundle({ withOneTimePreKey: false }));
    expect(read(await bob.decrypt(alice.address, await alice.encrypt(bob.address, text('drained'))))).toBe('drained');
    expect(await bob.stores.preKeys.loadKyberPreKey(9)).toBeDefined(); // last resort: kept
  });
});

describe('SECURITY-TESTS row 12: a failed decrypt changes nothing', () => {
  it('fails a first message with any corrupted byte, keeps the one-time prekey, then opens the genuine one', async () => {
    const [alice, bob] = await pair();
    await alice.startSession(bob, await bob.bundle());
    const genuine = await alice.encrypt(bob.address, text('genuine'));
    const before = await snapshot(bob, alice);
    const parsed = decodePreKeySignalMessage(genuine.body);
    const inner = genuine.body.length - parsed.message.serialized.length;
    // Every byte of the inner SignalMessage, and a sample across the rest (ids, keys, Kyber ciphertext).
    const positions = [...Array.from({ length: genuine.body.length - inner }, (_, i) => inner + i), ...Array.from({ length: 60 }, (_, i) => 1 + i * 29)];
    let refused = 0;
    for (const position of positions.filter((p) => p < genuine.body.length)) {
      const body = genuine.body.slice();
      body[position]! ^= 0x01;
      const error = await errorOf(bob.decrypt(alice.address, { type: MessageType.PreKey, body }));
      if (error === undefined) continue; // a flip in a field no one reads (for example an unknown tag)
      expect(isProtocolError(error), `byte ${position}`).toBe(true);
      expect(await snapshot(bob, alice)).toBe(before);
      refused++;
    }
    expect(refused).toBeGreaterThan(positions.length - 5);
    expect(read(await bob.decrypt(alice.address, genuine))).toBe('genuine');
    expect(bob.stores.preKeys.preKeyCount).toBe(3);
  });

  it('leaves an established session unchanged by a forged or truncated message', async () => {
    const [alice, bob] = await established();
    const genuine = await alice.encrypt(bob.address, text('after the forgeries'));
    const before = await snapshot(bob, alice);
    for (const body of [genuine.body.subarray(0, 10), flipped(genuine.body, 8 * (genuine.body.length - 1)), new Uint8Array(0), Uint8Array.of(0x44)]) {
      expect(isProtocolError(await errorOf(bob.decrypt(alice.address, { type: MessageType.Whisper, body })))).toBe(true);
      expect(await snapshot(bob, alice)).toBe(before);
    }
    expect(read(await bob.decrypt(alice.address, genuine))).toBe('after the forgeries');
  });
});

/** A provider that counts the HMAC and HKDF calls, to show that no key was derived. */
function counting(inner: CryptoProvider): { provider: CryptoProvider; derivations: () => number } {
  let calls = 0;
  return {
    provider: {
      ...inner,
      hmacSha256: (key, data) => ((calls += 1), inner.hmacSha256(key, data)),
      hkdfSha256: (ikm, salt, info, length) => ((calls += 1), inner.hkdfSha256(ikm, salt, info, length)),
      x25519Agree: (priv, pub) => ((calls += 1), inner.x25519Agree(priv, pub)),
    },
    derivations: () => calls,
  };
}

/** A SignalMessage from Alice's identity with any counter and ratchet key (its MAC cannot be right). */
async function forge(alice: ParleyPeer, bob: ParleyPeer, fields: { ratchetKey: Uint8Array; counter: number }): Promise<CiphertextMessage> {
  const message = await encodeSignalMessage(
    provider,
    { ...fields, previousCounter: 0, ciphertext: new Uint8Array(16) },
    new SecretBytes(new Uint8Array(32)),
    alice.identityKey,
    bob.identityKey,
  );
  return { type: MessageType.Whisper, body: message.serialized };
}

describe('SECURITY-TESTS row 13: skipped-key exhaustion', () => {
  it('rejects a counter beyond MAX_FORWARD_JUMPS without deriving a single key', async () => {
    const [alice, bob] = await established();
    const record = (await alice.stores.sessions.loadSession(bob.address))!;
    const ratchetKey = record.current!.senderRatchet.publicKey;
    for (const [name, key] of [['current chain', ratchetKey], ['new chain', (await provider.x25519GenerateKeyPair()).publicKey]] as const) {
      const { provider: watched, derivations } = counting(provider);
      const message = await forge(alice, bob, { ratchetKey: key, counter: limits.MAX_FORWARD_JUMPS + 5 });
      const before = await snapshot(bob, alice);
      const { decryptMessage } = await import('./index.js');
      const error = await errorOf(decryptMessage(watched, bob.stores, alice.address, message));
      expect(isProtocolError(error, 'TOO_FAR_IN_FUTURE'), name).toBe(true);
      expect(derivations(), name).toBe(0);
      expect(await snapshot(bob, alice)).toBe(before);
    }
  });

  it('reports a replay as a duplicate', async () => {
    const [alice, bob] = await established();
    const message = await alice.encrypt(bob.address, text('x'));
    await bob.decrypt(alice.address, message);
    expect(isProtocolError(await errorOf(bob.decrypt(alice.address, message)), 'DUPLICATE_MESSAGE')).toBe(true);
  });
});

const LOW_ORDER = LOW_ORDER_POINTS.map(fromHex);

describe('SECURITY-TESTS row 14: non-contributory DH', () => {
  it('rejects low-order ratchet keys with INVALID_KEY and changes nothing', async () => {
    const [alice, bob] = await established();
    for (const point of LOW_ORDER) {
      const before = await snapshot(bob, alice);
      const error = await errorOf(bob.decrypt(alice.address, await forge(alice, bob, { ratchetKey: point, counter: 0 })));
      expect(isProtocolError(error, 'INVALID_KEY')).toBe(true);
      expect(await snapshot(bob, alice)).toBe(before);
    }
  });

  it('rejects a low-order one-time prekey in a bundle', async () => {
    const [alice, bob] = await pair();
    const bundle = await bob.bundle();
    for (const point of LOW_ORDER) {
      const error = await errorOf(processPreKeyBundle(provider, alice.stores, bob.address, { ...bundle, preKey: serializePublicKey(point) }, NOW));
      expect(isProtocolError(error, 'INVALID_KEY')).toBe(true);
    }
  });

  it('rejects a low-order base key in a first message', async () => {
    const [alice, bob] = await pair();
    await alice.startSession(bob, await bob.bundle());
    const genuine = await alice.encrypt(bob.address, text('x'));
    const parsed = decodePreKeySignalMessage(genuine.body);
    const baseKeyAt = Buffer.from(genuine.body).indexOf(Buffer.from(serializePublicKey(parsed.baseKey)));
    for (const point of LOW_ORDER.slice(1)) {
      const body = genuine.body.slice();
      body.set(point, baseKeyAt + 1);
      expect(isProtocolError(await errorOf(bob.decrypt(alice.address, { type: MessageType.PreKey, body })), 'INVALID_KEY')).toBe(true);
    }
    expect(read(await bob.decrypt(alice.address, genuine))).toBe('x');
  });
});

describe('SECURITY-TESTS row 16: simultaneous initiation with loss', () => {
  it('converges on one session, and every message not lost decrypts', async () => {
    const [alice, bob] = await pair();
    await alice.startSession(bob, await bob.bundle());
    await bob.startSession(alice, await alice.bundle());
    const fromAlice = await alice.encrypt(bob.address, text('alice first'));
    await bob.encrypt(alice.address, text('bob first (lost)'));
    expect(read(await bob.decrypt(alice.address, fromAlice))).toBe('alice first');

    // Keep talking, losing every third message, until both sides' current sessions are the same one.
    const current = async (p: ParleyPeer, q: ParleyPeer) => (await p.stores.sessions.loadSession(q.address))!.current!.aliceBaseKey;
    let rounds = 0;
    for (; rounds < 10; rounds++) {
      const a = await alice.encrypt(bob.address, text(`a${rounds}`));
      if (rounds % 3 !== 2) expect(read(await bob.decrypt(alice.address, a))).toBe(`a${rounds}`);
      const b = await bob.encrypt(alice.address, text(`b${rounds}`));
      if (rounds % 3 !== 1) expect(read(await alice.decrypt(bob.address, b))).toBe(`b${rounds}`);
      if (Buffer.from(await current(alice, bob)).equals(Buffer.from(await current(bob, alice))) && rounds > 2) break;
    }
    expect(rounds).toBeLessThan(10);
    const last = await alice.encrypt(bob.address, text('converged'));
    expect(last.type).toBe(MessageType.Whisper);
    expect(read(await bob.decrypt(alice.address, last))).toBe('converged');
  });
});
