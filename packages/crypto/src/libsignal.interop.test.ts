/**
 * Interop with libsignal-client 0.90 (AGPL, a test-only peer): Parley's keys,
 * XEdDSA signatures, X25519 agreements and Kyber1024 keys must be
 * interchangeable with the reference implementation's, both ways.
 *
 * Kyber ciphertexts travel between the two inside PQXDH session setup, the only
 * place libsignal's API exposes them; that half lives in `packages/protocol`.
 */
import * as libsignal from 'libsignal-client-0.90';
import { describe, expect, it } from 'vitest';

import { providerCases } from '../../../testing/providers.js';
import { KemType, serializePublicKey, toHex, xeddsaSign, xeddsaVerify } from './index.js';

const message = new TextEncoder().encode('interop: the same bytes on both sides');
const own = (bytes: Uint8Array): Uint8Array<ArrayBuffer> => Uint8Array.from(bytes);

function flips(signature: Uint8Array): Uint8Array<ArrayBuffer>[] {
  return Array.from({ length: 512 }, (_, bit) => {
    const flipped = Uint8Array.from(signature);
    flipped[bit >> 3]! ^= 1 << (bit & 7);
    return flipped;
  });
}

for (const { label, make } of providerCases) {
  describe(`libsignal-client 0.90 interop: ${label}`, () => {
    const provider = make();

    it('derives the same public key from the same private key', async () => {
      const { privateKey, publicKey } = await provider.x25519GenerateKeyPair();
      const theirs = libsignal.PrivateKey.deserialize(own(privateKey.expose()));
      expect(toHex(theirs.getPublicKey().serialize())).toBe(toHex(serializePublicKey(publicKey)));
      const generated = libsignal.PrivateKey.generate();
      expect(toHex(await provider.x25519PublicKey(generated.serialize()))).toBe(
        toHex(generated.getPublicKey().getPublicKeyBytes()),
      );
    });

    it('computes the same X25519 agreement as libsignal', async () => {
      const ours = await provider.x25519GenerateKeyPair();
      const theirs = libsignal.PrivateKey.generate();
      const shared = await provider.x25519Agree(ours.privateKey, theirs.getPublicKey().getPublicKeyBytes());
      const expected = theirs.agree(libsignal.PublicKey.deserialize(own(serializePublicKey(ours.publicKey))));
      expect(shared.equals(expected)).toBe(true);
    });

    it('has its XEdDSA signatures verified by libsignal, and no bit flip of them', async () => {
      const { privateKey, publicKey } = await provider.x25519GenerateKeyPair();
      const signature = await xeddsaSign(provider, privateKey, message);
      const verifier = libsignal.PublicKey.deserialize(own(serializePublicKey(publicKey)));
      expect(verifier.verify(own(message), own(signature))).toBe(true);
      expect(flips(signature).filter((f) => verifier.verify(own(message), f))).toEqual([]);
    });

    it("verifies libsignal's XEdDSA signatures, and rejects every bit flip of them", async () => {
      const signer = libsignal.PrivateKey.generate();
      const publicKey = signer.getPublicKey().getPublicKeyBytes();
      const signature = signer.sign(own(message));
      expect(await xeddsaVerify(provider, publicKey, message, signature)).toBe(true);
      const accepted: number[] = [];
      for (const [bit, flipped] of flips(signature).entries()) {
        if (await xeddsaVerify(provider, publicKey, message, flipped)) accepted.push(bit);
      }
      expect(accepted).toEqual([]);
    });

    it("uses libsignal's Kyber1024 key pairs: its serialized keys encapsulate and decapsulate here", async () => {
      const pair = libsignal.KEMKeyPair.generate();
      const publicKey = pair.getPublicKey().serialize();
      const secretKey = pair.getSecretKey().serialize();
      expect(publicKey[0]).toBe(KemType.Kyber1024);
      expect(secretKey[0]).toBe(KemType.Kyber1024);
      const { ciphertext, sharedSecret } = await provider.kemEncapsulate(publicKey);
      expect((await provider.kemDecapsulate(secretKey, ciphertext)).equals(sharedSecret)).toBe(true);
    });

    it('produces Kyber1024 keys libsignal accepts', async () => {
      const { publicKey, secretKey } = await provider.kemGenerateKeyPair(KemType.Kyber1024);
      expect(toHex(libsignal.KEMPublicKey.deserialize(own(publicKey)).serialize())).toBe(toHex(publicKey));
      expect(libsignal.KEMSecretKey.deserialize(own(secretKey.expose())).serialize().length).toBe(secretKey.length);
    });
  });
}
