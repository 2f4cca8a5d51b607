/**
 * Registration and account lookup.
 *
 *   POST /v1/accounts            register: an account and its first device
 *   GET  /v1/accounts/:username  an account's identity key and signed device list
 */
import type { FastifyInstance } from 'fastify';

import { foldUsername, isProtocolError } from '@parley/protocol';

import type { ServerContext } from '../context.js';
import { ServerError } from '../errors.js';
import { insertAccount } from '../storage/accounts.js';
import { putKyberLastResort, putSignedPreKey } from '../storage/prekeys.js';
import { authenticate } from './authenticate.js';
import { deviceList, signedKey } from './keyChecks.js';
import {
  base64,
  bytes,
  CURVE_KEY_BYTES,
  deviceListSchema,
  kyberPreKeySchema,
  signedPreKeySchema,
  toBase64,
  usernameSchema,
  type DeviceListBody,
  type SignedPreKeyBody,
} from './schemas.js';

interface RegisterBody {
  identityKey: string;
  deviceList: DeviceListBody;
  signedPreKey: SignedPreKeyBody;
  kyberLastResortKey: SignedPreKeyBody;
}

/** The answer for a missing account and for a missing device: the same, so neither can be told apart. */
export function notFound(): ServerError {
  return new ServerError('NOT_FOUND', 'no such account or device');
}

/** Folds a username from a URL or body; a name that cannot exist is as absent as one that does not. */
export function lookupName(input: string): string | undefined {
  try {
    return foldUsername(input);
  } catch (error) {
    if (isProtocolError(error, 'INVALID_USERNAME')) return undefined;
    throw error;
  }
}

export function accountRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Body: RegisterBody }>(
    '/v1/accounts',
    {
      schema: {
        body: {
          type: 'object',
          required: ['identityKey', 'deviceList', 'signedPreKey', 'kyberLastResortKey'],
          additionalProperties: false,
          properties: {
            identityKey: base64(CURVE_KEY_BYTES),
            deviceList: deviceListSchema,
            signedPreKey: signedPreKeySchema,
            kyberLastResortKey: kyberPreKeySchema,
          },
        },
      },
    },
    async (request, reply) => {
      const retryAfter = await ctx.limits.registrations.take(request.ip);
      if (retryAfter > 0) throw new ServerError('RATE_LIMITED', 'too many registrations', { retryAfterSeconds: retryAfter });

      const identityKey = bytes(request.body.identityKey, 'identityKey', CURVE_KEY_BYTES);
      const { list, signed } = await deviceList(ctx, identityKey, request.body.deviceList);
      const device = list.devices[0]!;
      if (list.devices.length !== 1 || device.deviceId !== 1) {
        throw new ServerError('BAD_REQUEST', 'a new account lists exactly one device, with id 1');
      }
      const signedPreKey = await signedKey(ctx, identityKey, request.body.signedPreKey, 'curve', 'signedPreKey');
      const lastResort = await signedKey(ctx, identityKey, request.body.kyberLastResortKey, 'kem', 'kyberLastResortKey');

      const created = await ctx.database.db.transaction().execute(async (trx) => {
        const accountId = await insertAccount(trx, {
          username: list.username,
          identityKey,
          deviceList: signed,
          version: list.version,
          device,
        });
        if (accountId === undefined) return false;
        await putSignedPreKey(trx, accountId, device.deviceId, signedPreKey);
        await putKyberLastResort(trx, accountId, device.deviceId, lastResort);
        return true;
      });
      if (!created) throw new ServerError('USERNAME_TAKEN', 'that username is taken');
      return reply.code(201).send({ username: list.username, deviceId: device.deviceId });
    },
  );

  app.get<{ Params: { username: string } }>(
    '/v1/accounts/:username',
    { schema: { params: { type: 'object', properties: { username: usernameSchema } } } },
    async (request) => {
      const requester = await authenticate(ctx, request);
      const retryAfter = await ctx.limits.lookups.take(String(requester.accountId));
      if (retryAfter > 0) throw new ServerError('RATE_LIMITED', 'too many lookups', { retryAfterSeconds: retryAfter });
      const name = lookupName(request.params.username);
      const account = name === undefined ? undefined : await ctx.directory.byUsername(name);
      if (account === undefined) throw notFound();
      return {
        username: account.username,
        identityKey: toBase64(account.identityKey),
        deviceList: { list: toBase64(account.deviceList.list), signature: toBase64(account.deviceList.signature) },
      };
    },
  );
}
