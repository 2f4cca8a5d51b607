/**
 * Linking and removing devices. Every change is a new device list, signed by
 * the identity key and with a higher version; the server checks it and stores
 * it, and cannot make one itself.
 *
 *   POST /v1/devices/link  (device token) → {linkToken, deviceId, expiresAt}
 *   POST /v1/devices       {linkToken, deviceList, signedPreKey, kyberLastResortKey} → {username, deviceId}
 *   PUT  /v1/devices       (device token) {deviceList}: removes the devices it no longer lists
 */
import type { FastifyInstance } from 'fastify';

import { constantTimeEqual } from '@parley/crypto';
import { limits, type DeviceEntry, type DeviceList } from '@parley/protocol';

import type { ServerContext } from '../context.js';
import { CloseCode, ServerError } from '../errors.js';
import { LINK_TOKEN_LIFETIME_MS } from '../limits.js';
import { deleteDevice, findAccountById, insertDevice, replaceDeviceList, type StoredAccount } from '../storage/accounts.js';
import { blob } from '../storage/database.js';
import { putKyberLastResort, putSignedPreKey } from '../storage/prekeys.js';
import { authenticate } from './authenticate.js';
import { deviceList, signedKey } from './keyChecks.js';
import { deviceListSchema, kyberPreKeySchema, signedPreKeySchema, type DeviceListBody, type SignedPreKeyBody } from './schemas.js';

const LINK_TOKEN_BYTES = 32;

interface LinkBody {
  linkToken: string;
  deviceList: DeviceListBody;
  signedPreKey: SignedPreKeyBody;
  kyberLastResortKey: SignedPreKeyBody;
}

/** Whether `entry` is the stored device, unchanged. */
function unchanged(account: StoredAccount, entry: DeviceEntry): boolean {
  const stored = account.devices.get(entry.deviceId);
  return stored !== undefined && stored.registrationId === entry.registrationId && constantTimeEqual(stored.authKey, entry.authKey);
}

/** @throws ServerError `STALE_DEVICE_LIST` unless `list` is for this account and newer than the stored list. */
function checkNewer(account: StoredAccount, list: DeviceList): void {
  if (list.username !== account.username) throw new ServerError('BAD_REQUEST', 'the device list names another account');
  if (list.version <= account.deviceListVersion) {
    throw new ServerError('STALE_DEVICE_LIST', `the device list must have a version above ${account.deviceListVersion}`);
  }
}

export function deviceRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { db } = ctx.database;

  app.post('/v1/devices/link', async (request) => {
    const requester = await authenticate(ctx, request);
    if (requester.account.devices.size >= limits.MAX_DEVICES_PER_ACCOUNT) {
      throw new ServerError('LIMIT_EXCEEDED', `an account has at most ${limits.MAX_DEVICES_PER_ACCOUNT} devices`);
    }
    const token = ctx.provider.randomBytes(LINK_TOKEN_BYTES);
    const hash = await ctx.provider.sha256(token);
    const expiresAt = ctx.now() + LINK_TOKEN_LIFETIME_MS;
    // The id the new device will have. Only a completed link uses it up: two tokens issued at once name the
    // same id, and the second to complete is told to start over.
    const deviceId = requester.account.nextDeviceId;
    if (deviceId > limits.MAX_DEVICE_ID) throw new ServerError('LIMIT_EXCEEDED', 'this account has used up its device ids');
    await db
      .insertInto('link_tokens')
      .values({ token_hash: blob(hash), account_id: requester.accountId, device_id: deviceId, expires_at: expiresAt })
      .execute();
    return { linkToken: Buffer.from(token).toString('base64url'), deviceId, expiresAt };
  });

  app.post<{ Body: LinkBody }>(
    '/v1/devices',
    {
      schema: {
        body: {
          type: 'object',
          required: ['linkToken', 'deviceList', 'signedPreKey', 'kyberLastResortKey'],
          additionalProperties: false,
          properties: {
            linkToken: { type: 'string', pattern: '^[A-Za-z0-9_-]{43}$' },
            deviceList: deviceListSchema,
            signedPreKey: signedPreKeySchema,
            kyberLastResortKey: kyberPreKeySchema,
          },
        },
      },
    },
    async (request, reply) => {
      const hash = await ctx.provider.sha256(new Uint8Array(Buffer.from(request.body.linkToken, 'base64url')));
      const link = await db
        .selectFrom('link_tokens')
        .selectAll()
        .where('token_hash', '=', blob(hash))
        .where('expires_at', '>', ctx.now())
        .executeTakeFirst();
      const account = link === undefined ? undefined : await findAccountById(db, link.account_id);
      if (link === undefined || account === undefined) throw new ServerError('UNAUTHORIZED', 'the link token is invalid or expired');

      if (link.device_id < account.nextDeviceId) {
        throw new ServerError('STALE_DEVICE_LIST', `device ${link.device_id} was linked meanwhile; ask for a new link token`);
      }
      const { list, signed } = await deviceList(ctx, account.identityKey, request.body.deviceList);
      checkNewer(account, list);
      const added = list.devices.filter((d) => !account.devices.has(d.deviceId));
      const kept = list.devices.filter((d) => account.devices.has(d.deviceId));
      if (added.length !== 1 || added[0]!.deviceId !== link.device_id || kept.length !== account.devices.size || !kept.every((d) => unchanged(account, d))) {
        throw new ServerError('BAD_REQUEST', `the device list must keep every device unchanged and add exactly device ${link.device_id}`);
      }
      const device = added[0]!;
      const signedPreKey = await signedKey(ctx, account.identityKey, request.body.signedPreKey, 'curve', 'signedPreKey');
      const lastResort = await signedKey(ctx, account.identityKey, request.body.kyberLastResortKey, 'kem', 'kyberLastResortKey');

      const linked = await db.transaction().execute(async (trx) => {
        const used = await trx.deleteFrom('link_tokens').where('token_hash', '=', blob(hash)).executeTakeFirst();
        if (used.numDeletedRows !== 1n) return 'token';
        if (!(await replaceDeviceList(trx, account.id, account.deviceListVersion, signed, list.version, device.deviceId + 1))) {
          // Throwing rolls the transaction back, so the token and its device id survive for a retry.
          throw new ServerError('STALE_DEVICE_LIST', 'the device list changed meanwhile; sign the current one');
        }
        await insertDevice(trx, account.id, device);
        await putSignedPreKey(trx, account.id, device.deviceId, signedPreKey);
        await putKyberLastResort(trx, account.id, device.deviceId, lastResort);
        return 'linked';
      });
      if (linked === 'token') throw new ServerError('UNAUTHORIZED', 'the link token is invalid or expired');
      ctx.directory.invalidate(account.id);
      return reply.code(201).send({ username: account.username, deviceId: device.deviceId });
    },
  );

  app.put<{ Body: { deviceList: DeviceListBody } }>(
    '/v1/devices',
    {
      schema: {
        body: { type: 'object', required: ['deviceList'], additionalProperties: false, properties: { deviceList: deviceListSchema } },
      },
    },
    async (request) => {
      const { account } = await authenticate(ctx, request);
      const { list, signed } = await deviceList(ctx, account.identityKey, request.body.deviceList);
      checkNewer(account, list);
      if (!list.devices.every((d) => unchanged(account, d))) {
        throw new ServerError('BAD_REQUEST', 'a device list update may only remove devices; new devices are linked');
      }
      const listed = new Set(list.devices.map((d) => d.deviceId));
      const removed = [...account.devices.keys()].filter((id) => !listed.has(id));
      const replaced = await db.transaction().execute(async (trx) => {
        if (!(await replaceDeviceList(trx, account.id, account.deviceListVersion, signed, list.version))) return false;
        for (const id of removed) await deleteDevice(trx, account.id, id);
        return true;
      });
      if (!replaced) throw new ServerError('STALE_DEVICE_LIST', 'the device list changed meanwhile; sign the current one');
      ctx.directory.invalidate(account.id);
      // A send checked against the old device set may still be queued: once it is stored, empty the removed mailboxes again.
      await ctx.postOffice.flush();
      await db
        .deleteFrom('envelopes')
        .where('account_id', '=', account.id)
        .where('device_id', 'in', removed.length > 0 ? removed : [0])
        .execute();
      for (const deviceId of removed) {
        ctx.postOffice.evict({ accountId: account.id, deviceId }, CloseCode.UNAUTHORIZED, 'this device was removed');
      }
      return { version: list.version, removed };
    },
  );
}
