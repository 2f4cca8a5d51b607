/** The `Authorization: Bearer <token>` check for device routes. */
import type { FastifyRequest } from 'fastify';

import { deviceForToken, type AuthenticatedDevice } from '../auth/device.js';
import type { ServerContext } from '../context.js';
import { ServerError } from '../errors.js';

const BEARER = /^Bearer ([A-Za-z0-9_-]{1,128})$/;

/**
 * The device a request's token speaks for.
 * @throws ServerError `UNAUTHORIZED` for a missing, malformed, forged or expired
 *   token, or one whose device has since been removed — all alike.
 */
export async function authenticate(ctx: ServerContext, request: FastifyRequest): Promise<AuthenticatedDevice> {
  const match = BEARER.exec(request.headers.authorization ?? '');
  const device =
    match === null ? undefined : await deviceForToken(ctx.tokens, ctx.directory, new Uint8Array(Buffer.from(match[1]!, 'base64url')));
  if (device === undefined) throw new ServerError('UNAUTHORIZED', 'a valid device token is required');
  return device;
}
