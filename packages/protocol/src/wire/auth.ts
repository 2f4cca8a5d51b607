/**
 * Device login: the server sends a random challenge, and the device signs it
 * with its authentication key (listed in the signed device list). The server
 * keeps no password, and a signature is good for one challenge, one username
 * and one device only.
 *
 *   payload   = "Parley auth v1" ‖ 0x00 ‖ len(username) ‖ username ‖ u32be(device_id) ‖ challenge
 *   signature = XEdDSA(auth_key, payload)
 */
import { checkBytes, checkInteger, concatBytes, xeddsaSign, xeddsaVerify, type CryptoProvider, type SecretBytes } from '@parley/crypto';

import { decodePublicKey } from '../keys.js';
import { utf8 } from './text.js';

const CONTEXT = utf8('Parley auth v1\0');

/** Bytes in a login challenge. */
export const AUTH_CHALLENGE_LENGTH = 32;

/** @throws TypeError or RangeError for a device id that is not a uint32, a username over 255 bytes, or a challenge that is not bytes. */
function payload(username: string, deviceId: number, challenge: Uint8Array): Uint8Array {
  checkInteger(deviceId, 'deviceId', 0, 0xffff_ffff);
  checkBytes(challenge, 'challenge');
  const name = utf8(username);
  if (name.length > 255) throw new RangeError('username must be at most 255 bytes');
  const header = new Uint8Array(1 + name.length + 4);
  header[0] = name.length;
  header.set(name, 1);
  new DataView(header.buffer).setUint32(1 + name.length, deviceId);
  return concatBytes(CONTEXT, header, challenge);
}

/** Signs a login challenge with the device's authentication private key. */
export async function signAuthChallenge(
  provider: CryptoProvider,
  authPrivateKey: SecretBytes,
  username: string,
  deviceId: number,
  challenge: Uint8Array,
): Promise<Uint8Array> {
  return xeddsaSign(provider, authPrivateKey, payload(username, deviceId, challenge));
}

/**
 * Whether `signature` answers `challenge` for (username, device).
 * @throws ProtocolError `INVALID_KEY` if `authKey` is not a serialized Curve25519 key.
 */
export async function verifyAuthChallenge(
  provider: CryptoProvider,
  authKey: Uint8Array,
  username: string,
  deviceId: number,
  challenge: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  return xeddsaVerify(provider, decodePublicKey(authKey, 'auth key'), payload(username, deviceId, challenge), signature);
}
