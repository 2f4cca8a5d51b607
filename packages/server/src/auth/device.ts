/** From a connection token to the device it speaks for: the one check HTTP routes and WebSockets share. */
import type { Directory } from '../directory.js';
import type { StoredAccount } from '../storage/accounts.js';
import type { DeviceIdentity, TokenIssuer } from './tokens.js';

export interface AuthenticatedDevice extends DeviceIdentity {
  readonly account: StoredAccount;
}

/**
 * The device `token` speaks for, or undefined if the token is malformed,
 * forged or expired, or its device is no longer in the account's list.
 */
export async function deviceForToken(
  tokens: TokenIssuer,
  directory: Directory,
  token: Uint8Array,
): Promise<AuthenticatedDevice | undefined> {
  const identity = await tokens.verify(token);
  const account = identity === undefined ? undefined : await directory.byId(identity.accountId);
  return identity !== undefined && account?.devices.has(identity.deviceId) === true ? { ...identity, account } : undefined;
}
