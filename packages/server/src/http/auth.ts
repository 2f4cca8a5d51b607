/**
 * Device login by challenge and signature; the server stores no passwords.
 *
 *   POST /v1/auth/challenge  {username, deviceId}                       → {challenge}
 *   POST /v1/auth/token      {username, deviceId, challenge, signature} → {token, expiresAt}
 *
 * Both answer alike for existing and missing accounts: a challenge is issued
 * for any well-formed name, and every failure to log in is the same 401.
 */
import type { FastifyInstance } from 'fastify';

import { AUTH_CHALLENGE_LENGTH, verifyAuthChallenge } from '@parley/protocol';

import type { ServerContext } from '../context.js';
import { ServerError } from '../errors.js';
import { CHALLENGE_LIFETIME_MS } from '../limits.js';
import { blob } from '../storage/database.js';
import { lookupName } from './accounts.js';
import { base64, bytes, deviceIdSchema, SIGNATURE_BYTES, toBase64, usernameSchema } from './schemas.js';

interface ChallengeBody {
  username: string;
  deviceId: number;
}

interface TokenBody extends ChallengeBody {
  challenge: string;
  signature: string;
}

const unauthorized = () => new ServerError('UNAUTHORIZED', 'login failed');

/** A valid public key no device has (the base point), checked against when the device does not exist. */
const STAND_IN_KEY = Uint8Array.of(0x05, 9, ...new Uint8Array(31));

export function authRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Body: ChallengeBody }>(
    '/v1/auth/challenge',
    {
      schema: {
        body: {
          type: 'object',
          required: ['username', 'deviceId'],
          additionalProperties: false,
          properties: { username: usernameSchema, deviceId: deviceIdSchema },
        },
      },
    },
    async (request) => {
      const retryAfter = await ctx.limits.challenges.take(request.ip);
      if (retryAfter > 0) throw new ServerError('RATE_LIMITED', 'too many login attempts', { retryAfterSeconds: retryAfter });
      const challenge = ctx.provider.randomBytes(AUTH_CHALLENGE_LENGTH);
      await ctx.database.db
        .insertInto('auth_challenges')
        .values({
          challenge: blob(challenge),
          username: lookupName(request.body.username) ?? '',
          device_id: request.body.deviceId,
          expires_at: ctx.now() + CHALLENGE_LIFETIME_MS,
        })
        .execute();
      return { challenge: toBase64(challenge) };
    },
  );

  app.post<{ Body: TokenBody }>(
    '/v1/auth/token',
    {
      schema: {
        body: {
          type: 'object',
          required: ['username', 'deviceId', 'challenge', 'signature'],
          additionalProperties: false,
          properties: {
            username: usernameSchema,
            deviceId: deviceIdSchema,
            challenge: base64(AUTH_CHALLENGE_LENGTH),
            signature: base64(SIGNATURE_BYTES),
          },
        },
      },
    },
    async (request) => {
      const { deviceId } = request.body;
      const username = lookupName(request.body.username);
      const challenge = bytes(request.body.challenge, 'challenge', AUTH_CHALLENGE_LENGTH);
      const signature = bytes(request.body.signature, 'signature', SIGNATURE_BYTES);
      // A challenge is used once, whatever the outcome.
      const issued = await ctx.database.db
        .deleteFrom('auth_challenges')
        .where('challenge', '=', blob(challenge))
        .returning(['username', 'device_id', 'expires_at'])
        .executeTakeFirst();
      if (username === undefined || issued?.username !== username || issued.device_id !== deviceId || issued.expires_at <= ctx.now()) {
        throw unauthorized();
      }
      const account = await ctx.directory.byUsername(username);
      const device = account?.devices.get(deviceId);
      // A missing account or device costs the same signature check as a wrong signature, so timing does not tell them apart.
      const verified = await verifyAuthChallenge(ctx.provider, device?.authKey ?? STAND_IN_KEY, username, deviceId, challenge, signature);
      if (account === undefined || device === undefined || !verified) throw unauthorized();
      const { token, expiresAt } = await ctx.tokens.issue({ accountId: account.id, deviceId });
      return { token: Buffer.from(token).toString('base64url'), expiresAt };
    },
  );
}
