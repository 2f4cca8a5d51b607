/**
 * The key directory.
 *
 *   PUT /v1/keys                     (device token) upload prekeys; every signature is verified first
 *   GET /v1/keys                     (device token) one-time prekeys left, to know when to refill
 *   GET /v1/keys/:username/:deviceId (device token) prekey bundles for one device, or `*` for all
 *
 * A bundle fetch hands each one-time key out exactly once, and is rate-limited
 * per requester and per (requester, target). Missing accounts and missing
 * devices answer alike, and cost the same tokens.
 */
import type { FastifyInstance } from 'fastify';

import type { ServerContext } from '../context.js';
import { ServerError } from '../errors.js';
import { MAX_PREKEYS_PER_UPLOAD, MAX_STORED_PREKEYS } from '../limits.js';
import {
  addKyberPreKeys,
  addOneTimePreKeys,
  claimKeys,
  countPreKeys,
  lastResortKeyId,
  putKyberLastResort,
  putSignedPreKey,
  type UploadedSignedKey,
} from '../storage/prekeys.js';
import { lookupName, notFound } from './accounts.js';
import { authenticate } from './authenticate.js';
import { preKey, signedKey } from './keyChecks.js';
import {
  kyberPreKeySchema,
  preKeySchema,
  signedPreKeySchema,
  toBase64,
  usernameSchema,
  type PreKeyBody,
  type SignedPreKeyBody,
} from './schemas.js';

interface UploadBody {
  signedPreKey?: SignedPreKeyBody;
  preKeys?: PreKeyBody[];
  kyberPreKeys?: SignedPreKeyBody[];
  kyberLastResortKey?: SignedPreKeyBody;
}

/**
 * Refuses a list naming one key id twice: which of the two would be stored is
 * not for the database to pick (PostgreSQL refuses such an upsert outright,
 * which was a 500).
 * @throws ServerError `BAD_REQUEST`.
 */
function distinctIds(keys: readonly { readonly keyId: number }[] | undefined, name: string): void {
  if (keys !== undefined && new Set(keys.map((k) => k.keyId)).size !== keys.length) {
    throw new ServerError('BAD_REQUEST', `${name} names a key id twice`);
  }
}

export function keyRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { db, engine } = ctx.database;

  app.put<{ Body: UploadBody }>(
    '/v1/keys',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            signedPreKey: signedPreKeySchema,
            preKeys: { type: 'array', maxItems: MAX_PREKEYS_PER_UPLOAD, items: preKeySchema },
            kyberPreKeys: { type: 'array', maxItems: MAX_PREKEYS_PER_UPLOAD, items: kyberPreKeySchema },
            kyberLastResortKey: kyberPreKeySchema,
          },
        },
      },
    },
    async (request, reply) => {
      const device = await authenticate(ctx, request);
      const identityKey = device.account.identityKey;
      const body = request.body;
      distinctIds(body.preKeys, 'preKeys');
      distinctIds(body.kyberPreKeys, 'kyberPreKeys');
      const oneTime = (body.preKeys ?? []).map((k, i) => preKey(k, `preKeys[${i}]`));
      const kyber: UploadedSignedKey[] = [];
      for (const [i, k] of (body.kyberPreKeys ?? []).entries()) kyber.push(await signedKey(ctx, identityKey, k, 'kem', `kyberPreKeys[${i}]`));
      const signed = body.signedPreKey && (await signedKey(ctx, identityKey, body.signedPreKey, 'curve', 'signedPreKey'));
      const lastResort = body.kyberLastResortKey && (await signedKey(ctx, identityKey, body.kyberLastResortKey, 'kem', 'kyberLastResortKey'));

      await db.transaction().execute(async (trx) => {
        const counts = await countPreKeys(trx, device.accountId, device.deviceId);
        if (counts.preKeys + oneTime.length > MAX_STORED_PREKEYS || counts.kyberPreKeys + kyber.length > MAX_STORED_PREKEYS) {
          throw new ServerError('LIMIT_EXCEEDED', `a device stores at most ${MAX_STORED_PREKEYS} one-time keys of each kind`);
        }
        if (signed !== undefined) await putSignedPreKey(trx, device.accountId, device.deviceId, signed);
        if (lastResort !== undefined) await putKyberLastResort(trx, device.accountId, device.deviceId, lastResort);
        const lastResortId = await lastResortKeyId(trx, device.accountId, device.deviceId);
        if (kyber.some((k) => k.keyId === lastResortId)) {
          throw new ServerError('BAD_REQUEST', `Kyber key id ${lastResortId} is the last-resort key's; one-time keys need other ids`);
        }
        await addOneTimePreKeys(trx, device.accountId, device.deviceId, oneTime);
        await addKyberPreKeys(trx, device.accountId, device.deviceId, kyber);
      });
      return reply.code(204).send();
    },
  );

  app.get('/v1/keys', async (request) => {
    const device = await authenticate(ctx, request);
    return countPreKeys(db, device.accountId, device.deviceId);
  });

  app.get<{ Params: { username: string; deviceId: string } }>(
    '/v1/keys/:username/:deviceId',
    {
      schema: {
        params: {
          type: 'object',
          properties: { username: usernameSchema, deviceId: { type: 'string', pattern: '^(\\*|[1-9][0-9]{0,3})$' } },
        },
      },
    },
    async (request) => {
      const requester = await authenticate(ctx, request);
      const name = lookupName(request.params.username);
      const retryAfter = Math.max(
        await ctx.limits.lookups.take(String(requester.accountId)),
        await ctx.limits.bundlesPerTarget.take(`${requester.accountId}:${name ?? request.params.username}`),
      );
      if (retryAfter > 0) throw new ServerError('RATE_LIMITED', 'too many key fetches', { retryAfterSeconds: retryAfter });

      const account = name === undefined ? undefined : await ctx.directory.byUsername(name);
      if (account === undefined) throw notFound();
      const wanted =
        request.params.deviceId === '*'
          ? [...account.devices.keys()].filter((id) => !(account.id === requester.accountId && id === requester.deviceId))
          : [Number(request.params.deviceId)];
      const devices = [];
      for (const deviceId of wanted) {
        const device = account.devices.get(deviceId);
        const keys = device === undefined ? undefined : await claimKeys(db, engine, account.id, deviceId);
        if (device === undefined || keys === undefined) continue;
        devices.push({
          deviceId,
          registrationId: device.registrationId,
          signedPreKey: {
            keyId: keys.signedPreKey.keyId,
            publicKey: toBase64(keys.signedPreKey.publicKey),
            signature: toBase64(keys.signedPreKey.signature),
          },
          ...(keys.preKey === undefined ? {} : { preKey: { keyId: keys.preKey.keyId, publicKey: toBase64(keys.preKey.publicKey) } }),
          kyberPreKey: {
            keyId: keys.kyberPreKey.keyId,
            publicKey: toBase64(keys.kyberPreKey.publicKey),
            signature: toBase64(keys.kyberPreKey.signature),
          },
        });
      }
      if (devices.length === 0) throw notFound();
      return {
        username: account.username,
        identityKey: toBase64(account.identityKey),
        deviceList: { list: toBase64(account.deviceList.list), signature: toBase64(account.deviceList.signature) },
        devices,
      };
    },
  );
}
