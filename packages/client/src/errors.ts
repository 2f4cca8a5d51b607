/**
 * The client's errors: one class with a string `code`, and a guard that
 * narrows on it (as ProtocolError does). Messages are for people; code is for
 * programs, and says whether trying again can help.
 */
export type ClientErrorCode =
  /** The server answered with an error (its code is in `serverCode`). */
  | 'SERVER'
  /** The server could not be reached, or the connection dropped; try again. */
  | 'NETWORK'
  /** The server answered what this client cannot read, or what the protocol forbids. */
  | 'BAD_RESPONSE'
  /** No account has this username. */
  | 'UNKNOWN_USER'
  /** A contact marked verified has a new identity key: sending waits until the person is verified again. */
  | 'IDENTITY_CHANGED'
  /** A device list does not verify against the account's identity key, or goes back in version. */
  | 'INVALID_DEVICE_LIST'
  /** The server kept refusing a send (device lists changing underneath, a full mailbox…). */
  | 'SEND_REFUSED'
  /** The local profile has no account, or already has one. */
  | 'NO_ACCOUNT'
  | 'ACCOUNT_EXISTS'
  /** Another process (or tab) has this device's profile open. */
  | 'PROFILE_IN_USE'
  /** No group with this id on this device. */
  | 'UNKNOWN_GROUP'
  /** This account is no longer in the group. */
  | 'NOT_A_MEMBER'
  /** The group change breaks the roster's rules (not an admin, the last admin leaving…); nothing was changed. */
  | 'GROUP_CHANGE_REFUSED'
  /** An argument is out of range (an empty message, a bad username). */
  | 'INVALID_ARGUMENT'
  /** The client was closed. */
  | 'CLOSED';

export class ClientError extends Error {
  readonly code: ClientErrorCode;
  /** For `SERVER`: the HTTP status and the server's error code. */
  readonly status: number | undefined;
  readonly serverCode: string | undefined;

  constructor(code: ClientErrorCode, message: string, options: { cause?: unknown; status?: number; serverCode?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ClientError';
    this.code = code;
    this.status = options.status;
    this.serverCode = options.serverCode;
  }
}

export function isClientError<C extends ClientErrorCode>(error: unknown, code?: C): error is ClientError & { code: C } {
  return error instanceof ClientError && (code === undefined || error.code === code);
}
