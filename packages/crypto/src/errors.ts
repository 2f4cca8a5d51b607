/**
 * The one error type that `@parley/crypto` throws for anything other than a
 * misuse of its API's argument types and lengths (those throw `TypeError` and
 * `RangeError`, as noble does, with the argument's name in the message).
 *
 * Every error carries a string-literal `code` and the `category` that the
 * higher layers map to HTTP status and WebSocket close codes.
 */

/** Broad classes of failure, shared by every Parley package. */
export type ErrorCategory = 'Validation' | 'Codec' | 'Usage' | 'CryptoVerification' | 'Internal';

/** What went wrong, one code per distinct cause. */
export type CryptoErrorCode =
  /** A public key is not a valid encoding for its type (wrong type byte, off-curve, bad modulus). */
  | 'INVALID_PUBLIC_KEY'
  /** A Diffie-Hellman result was all zeros: the peer's key has low order (RFC 7748 §6.1). */
  | 'NON_CONTRIBUTORY_DH'
  /** An AEAD tag, CBC padding or MAC did not verify. Nothing about the plaintext is revealed. */
  | 'DECRYPTION_FAILED'
  /** A KEM key, ciphertext or type byte was unusable. */
  | 'INVALID_KEM_INPUT'
  /** A secret was used after it was wiped. */
  | 'SECRET_WIPED'
  /** The platform lacks a primitive this provider needs. */
  | 'UNSUPPORTED'
  /** A primitive failed in a way its contract does not allow. */
  | 'INTERNAL';

const CATEGORY: Readonly<Record<CryptoErrorCode, ErrorCategory>> = {
  INVALID_PUBLIC_KEY: 'Validation',
  NON_CONTRIBUTORY_DH: 'CryptoVerification',
  DECRYPTION_FAILED: 'CryptoVerification',
  INVALID_KEM_INPUT: 'Validation',
  SECRET_WIPED: 'Usage',
  UNSUPPORTED: 'Internal',
  INTERNAL: 'Internal',
};

/** An error raised by `@parley/crypto`. Its message never contains secret bytes. */
export class CryptoError extends Error {
  override readonly name = 'CryptoError';
  readonly code: CryptoErrorCode;
  readonly category: ErrorCategory;

  constructor(code: CryptoErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.category = CATEGORY[code];
  }
}

/** Narrows `error` to a {@link CryptoError}, optionally with the given `code`. */
export function isCryptoError<C extends CryptoErrorCode>(
  error: unknown,
  code?: C,
): error is CryptoError & { code: C } {
  return error instanceof CryptoError && (code === undefined || error.code === code);
}
