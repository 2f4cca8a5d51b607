/**
 * The `CryptoProvider` interface: every primitive Parley uses, and nothing
 * else. Higher layers receive a provider and never import `node:crypto`,
 * WebCrypto or `@noble/*` themselves.
 *
 * Conventions, the same for every implementation:
 * - Operations that may run on WebCrypto return promises; `randomBytes` is synchronous.
 * - Secret outputs come back as {@link SecretBytes}; secret inputs accept either.
 * - A wrong argument type throws `TypeError`, a wrong length `RangeError`, each
 *   naming the argument. Authentication failures throw `CryptoError`
 *   (`DECRYPTION_FAILED`); signature checks return `false` instead.
 * - Curve25519 keys here are raw 32-byte strings. The 33-byte form with
 *   libsignal's 0x05 type byte lives in `curve25519.ts`.
 */
import type { KemKeyPair, KemType } from './kem.js';
import type { BytesLike, SecretBytes } from './secret.js';

/** An X25519 key pair: a 32-byte secret scalar and its 32-byte public u-coordinate. */
export interface X25519KeyPair {
  readonly privateKey: SecretBytes;
  readonly publicKey: Uint8Array;
}

/** The result of a KEM encapsulation. `ciphertext` carries its KEM type byte, as libsignal serializes it. */
export interface KemEncapsulation {
  readonly ciphertext: Uint8Array;
  readonly sharedSecret: SecretBytes;
}

export interface CryptoProvider {
  /** Which implementation this is, for logs and benchmarks: `node` or `web`. */
  readonly name: string;

  /** `length` bytes from the platform CSPRNG (or the injected source in tests). */
  randomBytes(length: number): Uint8Array;

  /** SHA-256 (FIPS 180-4). */
  sha256(data: Uint8Array): Promise<Uint8Array>;
  /** SHA-512 (FIPS 180-4). */
  sha512(data: Uint8Array): Promise<Uint8Array>;
  /** HMAC-SHA256 (RFC 2104): a 32-byte tag. */
  hmacSha256(key: BytesLike, data: Uint8Array): Promise<Uint8Array>;
  /** HMAC-SHA512 (RFC 2104): a 64-byte tag. */
  hmacSha512(key: BytesLike, data: Uint8Array): Promise<Uint8Array>;
  /**
   * HKDF-SHA256 (RFC 5869), extract then expand. An empty salt means HashLen zeros (§2.2).
   * @throws RangeError when `length` exceeds 255 × 32 bytes.
   */
  hkdfSha256(ikm: BytesLike, salt: Uint8Array, info: Uint8Array, length: number): Promise<SecretBytes>;

  /** AES-256-CBC with PKCS#7 padding; `iv` is 16 bytes. */
  aes256CbcEncrypt(key: BytesLike, iv: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array>;
  /** @throws CryptoError `DECRYPTION_FAILED` when the length or padding is wrong. */
  aes256CbcDecrypt(key: BytesLike, iv: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array>;
  /** AES-256-GCM (NIST SP 800-38D) with a 12-byte nonce; returns ciphertext ‖ 16-byte tag. */
  aes256GcmEncrypt(key: BytesLike, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Promise<Uint8Array>;
  /** @throws CryptoError `DECRYPTION_FAILED` when the tag does not verify. */
  aes256GcmDecrypt(key: BytesLike, nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Promise<Uint8Array>;

  /** A fresh X25519 key pair (RFC 7748). The private key is stored clamped. */
  x25519GenerateKeyPair(): Promise<X25519KeyPair>;
  /** The public key of an X25519 private key. */
  x25519PublicKey(privateKey: BytesLike): Promise<Uint8Array>;
  /**
   * X25519(privateKey, publicKey).
   * @throws CryptoError `NON_CONTRIBUTORY_DH` when the result is all zeros, which every
   *   low-order public key produces (RFC 7748 §6.1).
   */
  x25519Agree(privateKey: BytesLike, publicKey: Uint8Array): Promise<SecretBytes>;

  /** The Ed25519 public key of a 32-byte seed (RFC 8032 §5.1.5). */
  ed25519PublicKey(seed: BytesLike): Promise<Uint8Array>;
  /** A deterministic Ed25519 signature (RFC 8032 §5.1.6). */
  ed25519Sign(seed: BytesLike, message: Uint8Array): Promise<Uint8Array>;
  /** Strict RFC 8032 verification: a non-canonical `S` or key fails. Never throws on bad input bytes. */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;

  /** A fresh KEM key pair of `type`, serialized with its type byte. */
  kemGenerateKeyPair(type: KemType): Promise<KemKeyPair>;
  /**
   * Encapsulates to a serialized (type-prefixed) KEM public key.
   * @throws CryptoError `INVALID_KEM_INPUT` for an unknown type byte, a bad length or (ML-KEM) a bad modulus.
   */
  kemEncapsulate(publicKey: Uint8Array): Promise<KemEncapsulation>;
  /**
   * Decapsulates a serialized ciphertext with a serialized secret key of the same type.
   * An invalid ciphertext of the right length yields an unrelated secret (implicit rejection).
   * @throws CryptoError `INVALID_KEM_INPUT` for mismatched types or bad lengths.
   */
  kemDecapsulate(secretKey: BytesLike, ciphertext: Uint8Array): Promise<SecretBytes>;
}
