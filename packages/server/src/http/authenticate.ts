/** The `Authorization: Bearer <token>` check for device routes. */
import type { FastifyRequest } from 'fastify';

import type { DeviceIdentity } from '../auth/tokens.js';
import type { ServerContext } from '../context.js';
import { ServerError } from '../errors.js';
import type { StoredAccount } from '../storage/accounts.js';

export interface AuthenticatedDevice extends DeviceIdentity {
  readonly account: StoredAccount;
}

const BEARER = /^Bearer ([A-Za-z0-9_-]{1,128})$/;

/**
 * The device a request's token speaks for.
 * @throws ServerError `UNAUTHORIZED` for a missing, malformed, forged or expired
 *   token, or one whose device has since been removed — all alike.
 */
export async function authenticate(ctx: ServerContext, request: FastifyRequest): Promise<AuthenticatedDevice> {
  const match = BEARER.exec(request.headers.authorization ?? '');
  const identity = match === null ? undefined : await ctx.tokens.verify(new Uint8Array(Buffer.from(match[1]!, 'base64url')));
  const account = identity === undefined ? undefined : await ctx.directory.byId(identity.accountId);
  if (identity === undefined || account?.devices.has(identity.deviceId) !== true) {
    throw new ServerError('UNAUTHORIZED', 'a valid device token is required');
  }
  return { ...identity, account };
}
