/**
 * Kyber1024 as submitted to NIST's third round (CRYSTALS-Kyber v3.02), which is
 * what libsignal's KEM type 0x08 is (libcrux `kyber1024`).
 *
 * We write no lattice code. FIPS 203 kept Kyber's IND-CPA scheme (K-PKE)
 * unchanged and altered only the Fujisaki–Okamoto wrapper around it, so round 3
 * is ML-KEM-1024 from `@noble/post-quantum` with the round-3 wrapper restored
 * using noble's SHA3 (Kyber v3.02 §1.3, Algorithms 8 and 9; FIPS 203 §1.3 lists
 * the differences):
 *
 * - Encaps: m = H(random); ML-KEM's internal encapsulation of m yields
 *   (K̄, c) with (K̄, r) = G(m ‖ H(pk)), exactly Kyber's; then K = KDF(K̄ ‖ H(c)).
 * - Decaps: ML-KEM returns K̄′ for a valid c and J(z ‖ c) for an invalid one.
 *   Kyber returns KDF(K̄′ ‖ H(c)) or KDF(z ‖ H(c)). We compute both candidates
 *   and select in constant time on whether the ML-KEM output equals J(z ‖ c).
 * - Keys: ML-KEM's key layout (dk_pke ‖ ek ‖ H(ek) ‖ z) is Kyber's. Key
 *   generation from fresh randomness yields keys with Kyber's distribution;
 *   only seed-determinism differs (G(d ‖ k) instead of G(d)), which no peer sees.
 *
 * H = SHA3-256, G = SHA3-512, KDF = J = SHAKE256 with 32 bytes of output.
 */
import { sha3_256, shake256 } from '@noble/hashes/sha3.js';
import { ml_kem1024, type KEMPrepared } from '@noble/post-quantum/ml-kem.js';

import { concatBytes, constantTimeEqual, wipe } from './bytes.js';

/** Byte lengths, identical to ML-KEM-1024's. */
export const KYBER1024_PUBLIC_KEY_LENGTH = 1568;
export const KYBER1024_SECRET_KEY_LENGTH = 3168;
export const KYBER1024_CIPHERTEXT_LENGTH = 1568;
const Z_LENGTH = 32;

const kdf = (input: Uint8Array): Uint8Array => shake256(input, { dkLen: 32 });

/** A key pair from 64 bytes of fresh randomness. */
export function kyber1024Keygen(seed: Uint8Array): { publicKey: Uint8Array; secretKey: Uint8Array } {
  return ml_kem1024.keygen(seed);
}

/** Kyber v3.02 Algorithm 8 with the 32 bytes of randomness given, on a prepared public key. */
export function kyber1024Encapsulate(
  publicKey: KEMPrepared,
  randomness: Uint8Array,
): { cipherText: Uint8Array; sharedSecret: Uint8Array } {
  const m = sha3_256(randomness);
  const { cipherText, sharedSecret: kBar } = publicKey.encapsulate(m);
  const input = concatBytes(kBar, sha3_256(cipherText));
  const sharedSecret = kdf(input);
  wipe(m, kBar, input);
  return { cipherText, sharedSecret };
}

/** Kyber v3.02 Algorithm 9, with implicit rejection as round 3 defines it, on the prepared public key inside `secretKey`. */
export function kyber1024Decapsulate(publicKey: KEMPrepared, cipherText: Uint8Array, secretKey: Uint8Array): Uint8Array {
  const kBar = publicKey.decapsulate(cipherText, secretKey);
  const z = secretKey.subarray(secretKey.length - Z_LENGTH);
  const mlKemRejection = shake256(concatBytes(z, cipherText), { dkLen: 32 });
  const cipherTextHash = sha3_256(cipherText);
  const acceptInput = concatBytes(kBar, cipherTextHash);
  const rejectInput = concatBytes(z, cipherTextHash);
  const accepted = kdf(acceptInput);
  const rejected = kdf(rejectInput);
  // All-ones when ML-KEM rejected c (a false match has probability 2^-256).
  const mask = -Number(constantTimeEqual(kBar, mlKemRejection)) & 0xff;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = ((accepted[i] as number) & ~mask) | ((rejected[i] as number) & mask);
  wipe(kBar, mlKemRejection, acceptInput, rejectInput, accepted, rejected);
  return out;
}
