/**
 * One behaviour suite for every provider: the same inputs must give the same
 * outputs and the same errors on node:crypto, WebCrypto and noble.
 */
import { inspect } from 'node:util';

import { describe, expect, it } from 'vitest';

import { LOW_ORDER_POINTS } from '../../../testing/curve25519.js';
import { providerCases, replaying } from '../../../testing/providers.js';
import { fromHex, isCryptoError, KemType, SecretBytes, toHex, type CryptoProvider } from './index.js';

const bytes = (length: number, fill: number): Uint8Array => new Uint8Array(length).fill(fill);

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (e: unknown) => e,
  );
}


for (const { label, make } of providerCases) {
  describe(`CryptoProvider: ${label}`, () => {
    const provider: CryptoProvider = make();
    const reference: CryptoProvider = providerCases[0]!.make();

    it('returns fresh random bytes of the asked length', () => {
      const a = provider.randomBytes(100_000);
      const b = provider.randomBytes(100_000);
      expect(a.length).toBe(100_000);
      expect(toHex(a)).not.toBe(toHex(b));
      expect(() => provider.randomBytes(-1)).toThrow(RangeError);
    });

    it('hashes like FIPS 180-4 (empty-string digests)', async () => {
      expect(toHex(await provider.sha256(new Uint8Array(0)))).toBe(
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      );
      expect(toHex(await provider.sha512(new Uint8Array(0)))).toMatch(/^cf83e1357eefb8bd/);
    });

    it('accepts an empty HMAC key and an empty HKDF key, as the RFCs do', async () => {
      const tag = await provider.hmacSha256(new Uint8Array(0), bytes(3, 1));
      expect(toHex(tag)).toBe(toHex(await reference.hmacSha256(new Uint8Array(0), bytes(3, 1))));
      const okm = await provider.hkdfSha256(new Uint8Array(0), new Uint8Array(0), new Uint8Array(0), 42);
      expect(okm.length).toBe(42);
      expect((await provider.hkdfSha256(bytes(32, 1), new Uint8Array(0), new Uint8Array(0), 0)).length).toBe(0);
    });

    it('agrees with the reference provider on every symmetric primitive', async () => {
      const key = bytes(32, 7);
      const iv = bytes(16, 9);
      const nonce = bytes(12, 3);
      const data = provider.randomBytes(1000);
      expect(toHex(await provider.hmacSha512(key, data))).toBe(toHex(await reference.hmacSha512(key, data)));
      const okm = await provider.hkdfSha256(key, iv, data.subarray(0, 100), 80);
      expect(okm.equals(await reference.hkdfSha256(key, iv, data.subarray(0, 100), 80))).toBe(true);
      expect(toHex(await provider.aes256CbcEncrypt(key, iv, data))).toBe(toHex(await reference.aes256CbcEncrypt(key, iv, data)));
      const sealed = await provider.aes256GcmEncrypt(key, nonce, data, iv);
      expect(toHex(sealed)).toBe(toHex(await reference.aes256GcmEncrypt(key, nonce, data, iv)));
      expect(toHex(await provider.aes256GcmDecrypt(key, nonce, sealed, iv))).toBe(toHex(data));
    });

    it('accepts SecretBytes wherever a key is taken', async () => {
      const key = SecretBytes.copyOf(bytes(32, 5));
      const iv = bytes(16, 1);
      const ct = await provider.aes256CbcEncrypt(key, iv, bytes(5, 2));
      expect(toHex(await provider.aes256CbcDecrypt(key, iv, ct))).toBe('0202020202');
      key.wipe();
      expect(isCryptoError(await errorOf(provider.aes256CbcEncrypt(key, iv, bytes(1, 1))), 'SECRET_WIPED')).toBe(true);
    });

    it('names the argument in type and length errors', async () => {
      const wrongLength = await errorOf(provider.aes256CbcEncrypt(bytes(16, 0), bytes(16, 0), bytes(1, 0)));
      expect(wrongLength).toBeInstanceOf(RangeError);
      expect(String(wrongLength)).toMatch(/key must be 32 bytes, got 16/);
      const wrongType = await errorOf(provider.sha256('hello' as unknown as Uint8Array));
      expect(wrongType).toBeInstanceOf(TypeError);
      expect(String(wrongType)).toMatch(/data must be a Uint8Array, got string/);
      expect(await errorOf(provider.aes256GcmEncrypt(bytes(32, 0), bytes(16, 0), bytes(1, 0)))).toBeInstanceOf(RangeError);
      expect(await errorOf(provider.hkdfSha256(bytes(1, 0), bytes(0, 0), bytes(0, 0), 255 * 32 + 1))).toBeInstanceOf(RangeError);
      expect(await errorOf(provider.x25519Agree(bytes(31, 1), bytes(32, 9)))).toBeInstanceOf(RangeError);
    });

    it('fails a tampered AES-GCM or AES-CBC ciphertext with DECRYPTION_FAILED and nothing else', async () => {
      const key = bytes(32, 1);
      const sealed = await provider.aes256GcmEncrypt(key, bytes(12, 0), bytes(40, 4), bytes(3, 3));
      for (const index of [0, 20, sealed.length - 1]) {
        const tampered = sealed.slice();
        tampered[index]! ^= 1;
        expect(isCryptoError(await errorOf(provider.aes256GcmDecrypt(key, bytes(12, 0), tampered, bytes(3, 3))), 'DECRYPTION_FAILED')).toBe(true);
      }
      expect(isCryptoError(await errorOf(provider.aes256GcmDecrypt(key, bytes(12, 0), sealed, bytes(3, 4))), 'DECRYPTION_FAILED')).toBe(true);
      expect(isCryptoError(await errorOf(provider.aes256GcmDecrypt(key, bytes(12, 0), bytes(15, 0))), 'DECRYPTION_FAILED')).toBe(true);
      const cbc = await provider.aes256CbcEncrypt(key, bytes(16, 0), bytes(16, 4));
      expect(isCryptoError(await errorOf(provider.aes256CbcDecrypt(key, bytes(16, 0), cbc.subarray(0, 31))), 'DECRYPTION_FAILED')).toBe(true);
      expect(isCryptoError(await errorOf(provider.aes256CbcDecrypt(key, bytes(16, 0), new Uint8Array(0))), 'DECRYPTION_FAILED')).toBe(true);
    });

    it('agrees on X25519 with the reference provider, both ways', async () => {
      const alice = await provider.x25519GenerateKeyPair();
      const bob = await reference.x25519GenerateKeyPair();
      expect(toHex(await provider.x25519PublicKey(alice.privateKey))).toBe(toHex(alice.publicKey));
      expect(toHex(await reference.x25519PublicKey(alice.privateKey))).toBe(toHex(alice.publicKey));
      const ab = await provider.x25519Agree(alice.privateKey, bob.publicKey);
      const ba = await reference.x25519Agree(bob.privateKey, alice.publicKey);
      expect(ab.equals(ba)).toBe(true);
      expect(alice.privateKey.expose()[0]! & 7).toBe(0); // stored clamped
    });

    it('rejects every low-order X25519 public key as NON_CONTRIBUTORY_DH', async () => {
      const { privateKey } = await provider.x25519GenerateKeyPair();
      for (const point of LOW_ORDER_POINTS) {
        for (const highBit of [0, 0x80]) {
          const publicKey = fromHex(point);
          publicKey[31]! |= highBit;
          const error = await errorOf(provider.x25519Agree(privateKey, publicKey));
          expect(isCryptoError(error, 'NON_CONTRIBUTORY_DH'), `${point} high bit ${highBit}`).toBe(true);
        }
      }
    });

    it('signs Ed25519 like RFC 8032 test 1 and verifies strictly', async () => {
      const seed = fromHex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
      const publicKey = await provider.ed25519PublicKey(seed);
      expect(toHex(publicKey)).toBe('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
      const signature = await provider.ed25519Sign(seed, new Uint8Array(0));
      expect(toHex(signature)).toMatch(/^e5564300c360ac72/);
      expect(await provider.ed25519Verify(publicKey, new Uint8Array(0), signature)).toBe(true);
      expect(await provider.ed25519Verify(publicKey, bytes(1, 0), signature)).toBe(false);
      expect(await provider.ed25519Verify(publicKey, new Uint8Array(0), signature.subarray(0, 63))).toBe(false);
      expect(await provider.ed25519Verify(bytes(32, 0xff), new Uint8Array(0), signature)).toBe(false);
    });

    for (const [name, type] of Object.entries(KemType)) {
      it(`round-trips ${name} with type-prefixed keys and ciphertexts`, async () => {
        const { publicKey, secretKey } = await provider.kemGenerateKeyPair(type);
        expect(publicKey[0]).toBe(type);
        expect(publicKey.length).toBe(1569);
        expect(secretKey.length).toBe(3169);
        const { ciphertext, sharedSecret } = await provider.kemEncapsulate(publicKey);
        expect(ciphertext[0]).toBe(type);
        expect(ciphertext.length).toBe(1569);
        expect((await provider.kemDecapsulate(secretKey, ciphertext)).equals(sharedSecret)).toBe(true);
        // A corrupted ciphertext opens to an unrelated secret (implicit rejection), never an error.
        const corrupted = ciphertext.slice();
        corrupted[100]! ^= 1;
        expect((await provider.kemDecapsulate(secretKey, corrupted)).equals(sharedSecret)).toBe(false);
      });
    }

    it('refuses KEM inputs of the wrong type or length with INVALID_KEM_INPUT', async () => {
      const kyber = await provider.kemGenerateKeyPair(KemType.Kyber1024);
      const mlkem = await provider.kemGenerateKeyPair(KemType.MlKem1024);
      const { ciphertext } = await provider.kemEncapsulate(kyber.publicKey);
      const invalid = [
        provider.kemDecapsulate(mlkem.secretKey, ciphertext),
        provider.kemDecapsulate(kyber.secretKey, ciphertext.subarray(0, 1000)),
        provider.kemDecapsulate(kyber.secretKey, new Uint8Array(0)),
        provider.kemEncapsulate(Uint8Array.of(0x07, ...kyber.publicKey.subarray(1))),
        provider.kemEncapsulate(kyber.publicKey.subarray(0, 1568)),
        provider.kemEncapsulate(Uint8Array.of(KemType.MlKem1024, ...bytes(1568, 0xff))),
      ];
      for (const attempt of invalid) expect(isCryptoError(await errorOf(attempt), 'INVALID_KEM_INPUT')).toBe(true);
    });

    it('is deterministic under injected randomness', async () => {
      const seeded = () => make({ randomBytes: replaying(bytes(32, 0x41), bytes(64, 0x42)) });
      const a = await seeded().x25519GenerateKeyPair();
      const b = await seeded().x25519GenerateKeyPair();
      expect(toHex(a.publicKey)).toBe(toHex(b.publicKey));
    });

    it('never shows secret bytes in strings, JSON or inspect', async () => {
      const { privateKey } = await provider.x25519GenerateKeyPair();
      const secretHex = toHex(privateKey.expose());
      for (const shown of [String(privateKey), JSON.stringify({ privateKey }), inspect(privateKey), inspect({ privateKey }, { depth: 5 })]) {
        expect(shown).toContain('redacted');
        expect(shown).not.toContain(secretHex);
      }
    });
  });
}
