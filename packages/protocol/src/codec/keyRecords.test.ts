/**
 * Identity and prekey records in libsignal's serialized forms: what Parley
 * writes, libsignal-client 0.90 reads (and writes back byte for byte), and the
 * other way round.
 */
import { createNodeProvider } from '@parley/crypto/node';
import * as libsignal from 'libsignal-client-0.90';
import { describe, expect, it } from 'vitest';

import { NOW } from '../../../../testing/peers.js';
import {
  deserializeIdentityKeyPair,
  deserializeKyberPreKeyRecord,
  deserializePreKeyRecord,
  deserializeSignedPreKeyRecord,
  generateIdentityKeyPair,
  generateKyberPreKey,
  generatePreKeys,
  generateSignedPreKey,
  isProtocolError,
  serializeIdentityKeyPair,
  serializeKyberPreKeyRecord,
  serializePreKeyRecord,
  serializeSignedPreKeyRecord,
} from '../index.js';

const provider = createNodeProvider();
const own = (b: Uint8Array): Uint8Array<ArrayBuffer> => Uint8Array.from(b);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe("libsignal's record forms", () => {
  it('identity key pairs cross both ways unchanged', async () => {
    const ours = await generateIdentityKeyPair(provider);
    const bytes = serializeIdentityKeyPair(ours).expose();
    const theirs = libsignal.IdentityKeyPair.deserialize(own(bytes));
    expect(hex(theirs.publicKey.serialize())).toBe(hex(ours.publicKey));
    expect(hex(theirs.serialize())).toBe(hex(bytes));
    const generated = libsignal.IdentityKeyPair.generate();
    const back = deserializeIdentityKeyPair(generated.serialize());
    expect(hex(back.privateKey.expose())).toBe(hex(generated.privateKey.serialize()));
  });

  it('one-time prekeys cross both ways unchanged', async () => {
    const [ours] = await generatePreKeys(provider, 77, 1);
    const bytes = serializePreKeyRecord(ours!).expose();
    const theirs = libsignal.PreKeyRecord.deserialize(own(bytes));
    expect(theirs.id()).toBe(77);
    expect(hex(theirs.serialize())).toBe(hex(bytes));
    const key = libsignal.PrivateKey.generate();
    const back = deserializePreKeyRecord(libsignal.PreKeyRecord.new(5, key.getPublicKey(), key).serialize());
    expect(back.id).toBe(5);
    expect(hex(back.privateKey.expose())).toBe(hex(key.serialize()));
  });

  it('signed prekeys cross both ways unchanged, signature and timestamp included', async () => {
    const identity = await generateIdentityKeyPair(provider);
    const ours = await generateSignedPreKey(provider, identity, 3, NOW);
    const bytes = serializeSignedPreKeyRecord(ours).expose();
    const theirs = libsignal.SignedPreKeyRecord.deserialize(own(bytes));
    expect([theirs.id(), theirs.timestamp()]).toEqual([3, NOW]);
    expect(hex(theirs.serialize())).toBe(hex(bytes));
    const back = deserializeSignedPreKeyRecord(theirs.serialize());
    expect(hex(back.signature)).toBe(hex(ours.signature));
    expect(back.timestamp).toBe(NOW);
  });

  it('Kyber prekeys cross both ways unchanged', async () => {
    const identity = await generateIdentityKeyPair(provider);
    const ours = await generateKyberPreKey(provider, identity, 9, NOW, { lastResort: true });
    const bytes = serializeKyberPreKeyRecord(ours).expose();
    const theirs = libsignal.KyberPreKeyRecord.deserialize(own(bytes));
    expect([theirs.id(), theirs.timestamp()]).toEqual([9, NOW]);
    expect(hex(theirs.publicKey().serialize())).toBe(hex(ours.publicKey));
    expect(hex(theirs.serialize())).toBe(hex(bytes));
    const pair = libsignal.KEMKeyPair.generate();
    const record = libsignal.KyberPreKeyRecord.new(4, NOW, pair, new Uint8Array(64));
    const back = deserializeKyberPreKeyRecord(record.serialize(), { lastResort: false });
    expect(hex(back.secretKey.expose())).toBe(hex(pair.getSecretKey().serialize()));
  });

  it('refuse damaged records with INVALID_STATE only', async () => {
    const identity = await generateIdentityKeyPair(provider);
    const good = serializeSignedPreKeyRecord(await generateSignedPreKey(provider, identity, 1, NOW)).expose();
    for (const bad of [good.subarray(0, 20), Uint8Array.of(0x12, 0x03, 0x05, 0x01, 0x02), Uint8Array.of(0xff)]) {
      let caught: unknown;
      try {
        deserializeSignedPreKeyRecord(bad);
      } catch (error) {
        caught = error;
      }
      expect(isProtocolError(caught, 'INVALID_STATE')).toBe(true);
    }
  });
});
