/** Turns uploaded key bodies into bytes, verifying every signature against the account's identity key. */
import { verifyPreKeySignature, verifyDeviceList, isProtocolError, type DeviceList } from '@parley/protocol';

import type { ServerContext } from '../context.js';
import { ServerError } from '../errors.js';
import type { UploadedKey, UploadedSignedKey } from '../storage/prekeys.js';
import {
  bytes,
  CURVE_KEY_BYTES,
  KEM_KEY_BYTES,
  SIGNATURE_BYTES,
  type DeviceListBody,
  type PreKeyBody,
  type SignedPreKeyBody,
} from './schemas.js';

/** KEM public keys carry their type byte: 0x08 Kyber1024, 0x0A ML-KEM-1024. */
const KEM_TYPES = new Set([0x08, 0x0a]);

export function preKey(body: PreKeyBody, name: string): UploadedKey {
  const publicKey = bytes(body.publicKey, `${name}.publicKey`, CURVE_KEY_BYTES);
  if (publicKey[0] !== 0x05) throw new ServerError('BAD_REQUEST', `${name}.publicKey is not a Curve25519 key`);
  return { keyId: body.keyId, publicKey };
}

/**
 * A signed prekey (`kind: 'curve'`) or Kyber prekey (`kind: 'kem'`), after its signature verified.
 * @throws ServerError `INVALID_SIGNATURE` or `BAD_REQUEST`.
 */
export async function signedKey(
  ctx: ServerContext,
  identityKey: Uint8Array,
  body: SignedPreKeyBody,
  kind: 'curve' | 'kem',
  name: string,
): Promise<UploadedSignedKey> {
  const publicKey =
    kind === 'curve' ? preKey(body, name).publicKey : bytes(body.publicKey, `${name}.publicKey`, KEM_KEY_BYTES);
  if (kind === 'kem' && !KEM_TYPES.has(publicKey[0]!)) throw new ServerError('BAD_REQUEST', `${name}.publicKey is not a Kyber1024 or ML-KEM-1024 key`);
  const signature = bytes(body.signature, `${name}.signature`, SIGNATURE_BYTES);
  if (!(await verifyPreKeySignature(ctx.provider, identityKey, publicKey, signature))) {
    throw new ServerError('INVALID_SIGNATURE', `${name} is not signed by the account's identity key`);
  }
  return { keyId: body.keyId, publicKey, signature };
}

/**
 * A device list after its signature verified.
 * @throws ServerError `INVALID_SIGNATURE` or `BAD_REQUEST`.
 */
export async function deviceList(
  ctx: ServerContext,
  identityKey: Uint8Array,
  body: DeviceListBody,
): Promise<{ list: DeviceList; signed: { list: Uint8Array; signature: Uint8Array } }> {
  const signed = { list: bytes(body.list, 'deviceList.list'), signature: bytes(body.signature, 'deviceList.signature', SIGNATURE_BYTES) };
  try {
    return { list: await verifyDeviceList(ctx.provider, identityKey, signed), signed };
  } catch (error) {
    if (isProtocolError(error, 'INVALID_SIGNATURE')) throw new ServerError('INVALID_SIGNATURE', error.message);
    if (isProtocolError(error)) throw new ServerError('BAD_REQUEST', error.message, { cause: error });
    throw error;
  }
}
