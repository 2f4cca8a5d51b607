/**
 * XEdDSA on every provider: round trips, cross-provider verification, and
 * rejection of every single-bit change to a signature (SECURITY-TESTS row 9).
 */
import { describe, expect, it } from 'vitest';

import { providerCases } from '../../../testing/providers.js';
import { xeddsaSign, xeddsaVerify } from './index.js';

const message = new TextEncoder().encode('a signed prekey, say');

for (const { label, make } of providerCases) {
  describe(`XEdDSA: ${label}`, () => {
    const provider = make();
    const others = providerCases.map((c) => c.make());

    it('verifies its own signatures on every provider, and only for the signed message and key', async () => {
      const { privateKey, publicKey } = await provider.x25519GenerateKeyPair();
      const signature = await xeddsaSign(provider, privateKey, message);
      expect(signature.length).toBe(64);
      for (const other of others) expect(await xeddsaVerify(other, publicKey, message, signature)).toBe(true);
      const stranger = await provider.x25519GenerateKeyPair();
      expect(await xeddsaVerify(provider, stranger.publicKey, message, signature)).toBe(false);
      expect(await xeddsaVerify(provider, publicKey, message.subarray(1), signature)).toBe(false);
    });

    it('signs the same with its public key given (the cached Edwards form), across many keys; a wrong public key only spoils the signature', async () => {
      for (let i = 0; i < 20; i++) {
        const { privateKey, publicKey } = await provider.x25519GenerateKeyPair();
        for (let j = 0; j < 3; j++) {
          const signature = await xeddsaSign(provider, privateKey, message, publicKey);
          expect(await xeddsaVerify(provider, publicKey, message, signature)).toBe(true);
          expect(signature[63]! & 0x80).toBe((await xeddsaSign(provider, privateKey, message))[63]! & 0x80);
        }
      }
      const signer = await provider.x25519GenerateKeyPair();
      const other = await provider.x25519GenerateKeyPair();
      // other's public key, never seen before, given with signer's private key: no signature verifies, and nothing is cached for it…
      const first = await xeddsaSign(provider, signer.privateKey, message, other.publicKey);
      expect(await xeddsaVerify(provider, other.publicKey, message, first)).toBe(false);
      // …so other's own key pair still signs under it.
      expect(await xeddsaVerify(provider, other.publicKey, message, await xeddsaSign(provider, other.privateKey, message, other.publicKey))).toBe(true);
      // Once other's form is cached, the mismatched pair still yields nothing that verifies, under either key.
      const spoiled = await xeddsaSign(provider, signer.privateKey, message, other.publicKey);
      expect(await xeddsaVerify(provider, signer.publicKey, message, spoiled)).toBe(false);
      expect(await xeddsaVerify(provider, other.publicKey, message, spoiled)).toBe(false);
    });

    it('signs with fresh randomness each time (XEdDSA nonces are randomized)', async () => {
      const { privateKey } = await provider.x25519GenerateKeyPair();
      const a = await xeddsaSign(provider, privateKey, message);
      const b = await xeddsaSign(provider, privateKey, message);
      expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    });

    it('rejects every bit flip of a signature', async () => {
      const { privateKey, publicKey } = await provider.x25519GenerateKeyPair();
      const signature = await xeddsaSign(provider, privateKey, message);
      const accepted: number[] = [];
      for (let bit = 0; bit < 512; bit++) {
        const flipped = signature.slice();
        flipped[bit >> 3]! ^= 1 << (bit & 7);
        if (await xeddsaVerify(provider, publicKey, message, flipped)) accepted.push(bit);
      }
      expect(accepted).toEqual([]);
    });

    it('returns false, never throws, for malformed keys and signatures', async () => {
      const { publicKey } = await provider.x25519GenerateKeyPair();
      expect(await xeddsaVerify(provider, publicKey, message, new Uint8Array(63))).toBe(false);
      expect(await xeddsaVerify(provider, publicKey.subarray(1), message, new Uint8Array(64))).toBe(false);
      const minusOne = new Uint8Array(32).fill(0xff);
      minusOne[0] = 0xec;
      minusOne[31] = 0x7f; // u = p − 1 has no Edwards equivalent
      expect(await xeddsaVerify(provider, minusOne, message, new Uint8Array(64))).toBe(false);
    });
  });
}
