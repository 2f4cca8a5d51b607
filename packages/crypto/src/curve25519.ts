/**
 * Curve25519 public keys as libsignal serializes them: a 0x05 type byte
 * ("DJB") followed by the 32-byte Montgomery u-coordinate.
 *
 * Decoding is for bytes from the network: it throws only `CryptoError`.
 */
import { checkBytes } from './bytes.js';
import { CryptoError } from './errors.js';

/** libsignal's type byte for Curve25519 public keys. */
export const DJB_KEY_TYPE = 0x05;
/** Length of a raw X25519 key, public or private. */
export const X25519_KEY_LENGTH = 32;
/** Length of a serialized Curve25519 public key: type byte and key. */
export const SERIALIZED_PUBLIC_KEY_LENGTH = 33;
/** Length of an XEdDSA or Ed25519 signature. */
export const SIGNATURE_LENGTH = 64;

/** The 33-byte serialized form of a raw 32-byte public key. */
export function serializePublicKey(publicKey: Uint8Array): Uint8Array {
  checkBytes(publicKey, 'publicKey', X25519_KEY_LENGTH);
  const out = new Uint8Array(SERIALIZED_PUBLIC_KEY_LENGTH);
  out[0] = DJB_KEY_TYPE;
  out.set(publicKey, 1);
  return out;
}

/**
 * The raw 32-byte key inside a serialized public key.
 * @throws CryptoError `INVALID_PUBLIC_KEY` for any length or type byte but 33 and 0x05.
 */
export function deserializePublicKey(serialized: Uint8Array): Uint8Array {
  if (!(serialized instanceof Uint8Array) || serialized.length !== SERIALIZED_PUBLIC_KEY_LENGTH) {
    throw new CryptoError('INVALID_PUBLIC_KEY', `a serialized public key is ${SERIALIZED_PUBLIC_KEY_LENGTH} bytes`);
  }
  if (serialized[0] !== DJB_KEY_TYPE) {
    throw new CryptoError('INVALID_PUBLIC_KEY', `unknown public key type 0x${serialized[0]?.toString(16)}`);
  }
  return serialized.subarray(1);
}

/** RFC 7748 §5 clamping of a 32-byte X25519 scalar, in place. Returns its argument. */
export function clampScalar(scalar: Uint8Array): Uint8Array {
  checkBytes(scalar, 'scalar', X25519_KEY_LENGTH);
  scalar[0] = (scalar[0] as number) & 248;
  scalar[31] = ((scalar[31] as number) & 127) | 64;
  return scalar;
}
