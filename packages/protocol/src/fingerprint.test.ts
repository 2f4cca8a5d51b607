/**
 * Safety numbers: identical to libsignal-client 0.90's `Fingerprint` for the
 * same inputs (displayable and scannable), symmetric between the two sides,
 * and sensitive to any change of key.
 */
import { fromHex, serializePublicKey } from '@parley/crypto';
import { createNodeProvider } from '@parley/crypto/node';
import * as libsignal from 'libsignal-client-0.90';
import { describe, expect, it } from 'vitest';

import { compareScannable, createFingerprint, isProtocolError } from './index.js';

const provider = createNodeProvider();
const own = (b: Uint8Array): Uint8Array<ArrayBuffer> => Uint8Array.from(b);
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('safety numbers', () => {
  it("match libsignal's test vector (version 1, 5,200 iterations)", async () => {
    const alice = { id: new TextEncoder().encode('+14152222222'), identityKey: fromHex('0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868') };
    const bob = { id: new TextEncoder().encode('+14153333333'), identityKey: fromHex('05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b') };
    const fingerprint = await createFingerprint(provider, alice, bob, { version: 1 });
    expect(fingerprint.displayable).toBe('300354477692869396892869876765458257569162576843440918079131');
    expect(toHex(fingerprint.scannable)).toBe(
      '080112220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df1a220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d',
    );
  });

  it('equal libsignal-client for random identities, both display and scan forms', async () => {
    for (let i = 0; i < 3; i++) {
      const [a, b] = [libsignal.IdentityKeyPair.generate(), libsignal.IdentityKeyPair.generate()];
      const [idA, idB] = [provider.randomBytes(16), provider.randomBytes(16)];
      const theirs = libsignal.Fingerprint.new(5200, 2, own(idA), a.publicKey, own(idB), b.publicKey);
      const ours = await createFingerprint(provider, { id: idA, identityKey: a.publicKey.serialize() }, { id: idB, identityKey: b.publicKey.serialize() });
      expect(ours.displayable).toBe(theirs.displayableFingerprint().toString());
      expect(toHex(ours.scannable)).toBe(toHex(theirs.scannableFingerprint().toBuffer()));
    }
  });

  it("are the same number on both sides, and each side's code matches the other's scan", async () => {
    const [a, b] = [await provider.x25519GenerateKeyPair(), await provider.x25519GenerateKeyPair()];
    const alice = { id: Uint8Array.of(1), identityKey: serializePublicKey(a.publicKey) };
    const bob = { id: Uint8Array.of(2), identityKey: serializePublicKey(b.publicKey) };
    const [forAlice, forBob] = [await createFingerprint(provider, alice, bob), await createFingerprint(provider, bob, alice)];
    expect(forAlice.displayable).toBe(forBob.displayable);
    expect(forAlice.displayable).toMatch(/^\d{60}$/);
    expect(compareScannable(forAlice.scannable, forBob.scannable)).toBe(true);
    expect(compareScannable(forAlice.scannable, forAlice.scannable)).toBe(false);

    const mallory = await provider.x25519GenerateKeyPair();
    const substituted = await createFingerprint(provider, alice, { ...bob, identityKey: serializePublicKey(mallory.publicKey) });
    expect(substituted.displayable).not.toBe(forAlice.displayable);
    expect(compareScannable(substituted.scannable, forBob.scannable)).toBe(false);
  });

  it('refuse a scan of another version or of garbage with typed errors', async () => {
    const party = { id: Uint8Array.of(1), identityKey: serializePublicKey((await provider.x25519GenerateKeyPair()).publicKey) };
    const v2 = await createFingerprint(provider, party, party, { iterations: 2 });
    const v1 = await createFingerprint(provider, party, party, { iterations: 2, version: 1 });
    expect(() => compareScannable(v2.scannable, v1.scannable)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_VERSION' }));
    for (const garbage of [Uint8Array.of(0xff), Uint8Array.of(0x08), new Uint8Array(0), Uint8Array.of(0x12, 0x05, 1)]) {
      let caught: unknown;
      try {
        compareScannable(v2.scannable, garbage);
      } catch (error) {
        caught = error;
      }
      expect(isProtocolError(caught)).toBe(true);
    }
  });
});
