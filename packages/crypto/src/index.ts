/**
 * `@parley/crypto`: the primitives every other Parley package uses, behind one
 * {@link CryptoProvider} interface. Pick an implementation from a subpath:
 * `@parley/crypto/node` (node:crypto) or `@parley/crypto/web` (WebCrypto and noble).
 *
 * This module holds no protocol logic: only primitives, key encodings and
 * XEdDSA, which Signal's protocols sign with.
 */
export { checkBytes, checkInteger, concatBytes, constantTimeEqual, fromHex, isAllZero, toHex, wipe } from './bytes.js';
export {
  clampScalar,
  deserializePublicKey,
  DJB_KEY_TYPE,
  SERIALIZED_PUBLIC_KEY_LENGTH,
  serializePublicKey,
  SIGNATURE_LENGTH,
  X25519_KEY_LENGTH,
} from './curve25519.js';
export { CryptoError, isCryptoError, type CryptoErrorCode, type ErrorCategory } from './errors.js';
export { KemType, type KemKeyPair } from './kem.js';
export type { CryptoProvider, KemEncapsulation, X25519KeyPair } from './provider.js';
export { readBytes, SecretBytes, type BytesLike } from './secret.js';
export { xeddsaSign, xeddsaVerify } from './xeddsa.js';
