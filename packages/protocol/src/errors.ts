/**
 * The one error type `@parley/protocol` throws. Decoders of untrusted bytes
 * throw nothing else. Codes are string literals with typed fields, so callers
 * branch on `code`, never on messages.
 */
import type { ErrorCategory } from '@parley/crypto';

export type ProtocolErrorCode =
  /** Bytes that are not a well-formed message or record. */
  | 'INVALID_ENCODING'
  /** A message whose version byte this implementation does not speak. */
  | 'UNSUPPORTED_VERSION'
  /** A well-formed message that failed authentication or could not be decrypted. */
  | 'INVALID_MESSAGE'
  /** A message whose keys were already used: a replay or a duplicate delivery. */
  | 'DUPLICATE_MESSAGE'
  /** A counter further ahead than MAX_FORWARD_JUMPS; no keys were derived. */
  | 'TOO_FAR_IN_FUTURE'
  /** The identity key for a known address changed: the caller must decide whether to trust it. */
  | 'UNTRUSTED_IDENTITY'
  /** A prekey signature did not verify. */
  | 'INVALID_SIGNATURE'
  /** A message names a prekey this device does not have (used, or never issued). */
  | 'UNKNOWN_PREKEY'
  /** No session exists for the address. */
  | 'NO_SESSION'
  /** A key of the wrong type or length. */
  | 'INVALID_KEY'
  /** A stored record that this version cannot read. */
  | 'INVALID_STATE'
  /** A username outside the allowed alphabet or length. */
  | 'INVALID_USERNAME';

const CATEGORY: Readonly<Record<ProtocolErrorCode, ErrorCategory>> = {
  INVALID_ENCODING: 'Codec',
  UNSUPPORTED_VERSION: 'Codec',
  INVALID_MESSAGE: 'CryptoVerification',
  DUPLICATE_MESSAGE: 'Validation',
  TOO_FAR_IN_FUTURE: 'Validation',
  UNTRUSTED_IDENTITY: 'CryptoVerification',
  INVALID_SIGNATURE: 'CryptoVerification',
  UNKNOWN_PREKEY: 'Validation',
  NO_SESSION: 'Usage',
  INVALID_KEY: 'Validation',
  INVALID_STATE: 'Internal',
  INVALID_USERNAME: 'Validation',
};

/** Details some codes carry. */
export interface ProtocolErrorDetails {
  /** The remote address concerned, as `name.deviceId`. */
  readonly address?: string;
  /** For UNTRUSTED_IDENTITY: the new identity key (33 bytes, public). */
  readonly identityKey?: Uint8Array;
  /** For DUPLICATE_MESSAGE and TOO_FAR_IN_FUTURE: the chain's index and the message counter. */
  readonly chainIndex?: number;
  readonly counter?: number;
}

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;
  readonly category: ErrorCategory;
  readonly details: ProtocolErrorDetails;

  constructor(code: ProtocolErrorCode, message: string, details: ProtocolErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.category = CATEGORY[code];
    this.details = details;
  }
}

/** Narrows `error` to a {@link ProtocolError}, optionally with the given `code`. */
export function isProtocolError<C extends ProtocolErrorCode>(
  error: unknown,
  code?: C,
): error is ProtocolError & { code: C } {
  return error instanceof ProtocolError && (code === undefined || error.code === code);
}
