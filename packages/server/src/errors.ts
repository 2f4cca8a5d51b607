/**
 * The server's one error type, and the one table that maps each code to an
 * HTTP status and a WebSocket close code. Messages are for people; clients
 * branch on `code`.
 */
import type { ErrorCategory } from '@parley/crypto';

export type ServerErrorCode =
  /** A body, parameter or frame that does not match its schema. */
  | 'BAD_REQUEST'
  /** No valid credential, or a credential for a device that no longer exists. */
  | 'UNAUTHORIZED'
  /** A valid credential that does not allow this. */
  | 'FORBIDDEN'
  /** No such account or device; the answer is the same for both. */
  | 'NOT_FOUND'
  /** The username belongs to another account. */
  | 'USERNAME_TAKEN'
  /** A device list whose version is not newer than the stored one, or that changes what it may not. */
  | 'STALE_DEVICE_LIST'
  /** A signature (device list, prekey, challenge) that does not verify. */
  | 'INVALID_SIGNATURE'
  /** More of something than a limit allows (keys stored, devices). */
  | 'LIMIT_EXCEEDED'
  /** A body or frame larger than its limit. */
  | 'TOO_LARGE'
  /** Too many requests; `retryAfterSeconds` says when to try again. */
  | 'RATE_LIMITED'
  /** The server is shutting down or its storage failed; try again. */
  | 'UNAVAILABLE'
  /** A bug. */
  | 'INTERNAL';

interface Mapping {
  readonly status: number;
  readonly category: ErrorCategory;
}

/** HTTP status and category of each code. WebSocket close codes are in {@link CloseCode}. */
export const ERRORS: Readonly<Record<ServerErrorCode, Mapping>> = {
  BAD_REQUEST: { status: 400, category: 'Validation' },
  UNAUTHORIZED: { status: 401, category: 'CryptoVerification' },
  FORBIDDEN: { status: 403, category: 'Usage' },
  NOT_FOUND: { status: 404, category: 'Usage' },
  USERNAME_TAKEN: { status: 409, category: 'Usage' },
  STALE_DEVICE_LIST: { status: 409, category: 'Validation' },
  INVALID_SIGNATURE: { status: 400, category: 'CryptoVerification' },
  LIMIT_EXCEEDED: { status: 422, category: 'Validation' },
  TOO_LARGE: { status: 413, category: 'Validation' },
  RATE_LIMITED: { status: 429, category: 'Usage' },
  UNAVAILABLE: { status: 503, category: 'Internal' },
  INTERNAL: { status: 500, category: 'Internal' },
};

/** A WebSocket close reason: at most 123 bytes of UTF-8 (RFC 6455 §5.5), or `ws` throws; longer text is cut with "...". */
export function closeReason(text: string): string {
  if (Buffer.byteLength(text) <= 123) return text;
  let cut = '';
  let bytes = 0;
  for (const char of text) {
    // Whole code points only: a surrogate pair is never split.
    bytes += Buffer.byteLength(char);
    if (bytes > 120) break;
    cut += char;
  }
  return `${cut}...`;
}

/** Why the server closed a WebSocket. 1xxx are the standard codes; 4xxx are Parley's. */
export const CloseCode = {
  /** Provisioning relay: the other party of the channel left (closed, or was closed). */
  NORMAL: 1000,
  /** The server is shutting down: reconnect later. */
  GOING_AWAY: 1001,
  /** A text frame; Parley speaks binary frames only. */
  UNSUPPORTED_DATA: 1003,
  /** A frame over MAX_FRAME_BYTES, or MAX_PROVISIONING_FRAME_BYTES on the provisioning relay (sent by `ws` itself). */
  TOO_BIG: 1009,
  /** A bug on the server. */
  INTERNAL: 1011,
  /** Provisioning relay: MAX_OPEN_CHANNELS channels are open; try again later. */
  TRY_AGAIN_LATER: 1013,
  /** A frame that does not decode, or arrives in the wrong state. */
  MALFORMED_FRAME: 4400,
  /** The token is missing, invalid or expired, or the device was removed. */
  UNAUTHORIZED: 4401,
  /** Provisioning relay: `join` names no open channel (unknown, expired, or already joined). */
  NO_SUCH_CHANNEL: 4404,
  /** No first frame within AUTH_TIMEOUT_MS: `auth` on a device's socket, `create` or `join` on the provisioning relay's. */
  AUTH_TIMEOUT: 4408,
  /** The same device opened a newer connection. */
  REPLACED: 4409,
  /** Provisioning relay: the channel reached PROVISIONING_LIFETIME_MS. */
  CHANNEL_EXPIRED: 4410,
  /** Provisioning relay: the channel relayed MAX_PROVISIONING_MESSAGES messages. */
  LIMIT_EXCEEDED: 4422,
  /** Provisioning relay: too many `create` or `join` frames from this client address (PROVISIONING_LIMITS). */
  RATE_LIMITED: 4429,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export class ServerError extends Error {
  override readonly name = 'ServerError';
  readonly code: ServerErrorCode;
  readonly status: number;
  readonly category: ErrorCategory;
  /** For RATE_LIMITED: seconds until a retry can succeed. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ServerErrorCode, message: string, options: { cause?: unknown; retryAfterSeconds?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = ERRORS[code].status;
    this.category = ERRORS[code].category;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function isServerError(error: unknown): error is ServerError {
  return error instanceof ServerError;
}
