/**
 * The signed device list: which devices an account has, signed by the
 * account's identity key. The server stores and serves it but cannot forge it,
 * so it cannot slip a ghost device into anyone's conversations; the version
 * only moves forward, so it cannot replay an old list without clients noticing.
 *
 *   list      = proto{username=1, version=2, device=3*}
 *   device    = proto{device_id=1, registration_id=2, auth_key=3}
 *   signature = XEdDSA(identity, "Parley device list v1" ‖ 0x00 ‖ list)
 *
 * `auth_key` is the device's own Curve25519 key (0x05 ‖ u), with which it
 * answers the server's login challenges (see `auth.ts`). The context string
 * keeps this signature from ever standing in for a prekey signature, which is
 * over a bare 33-byte key.
 */
import { concatBytes, xeddsaSign, xeddsaVerify, type CryptoProvider } from '@parley/crypto';

import { ProtocolError } from '../errors.js';
import { decodePublicKey, type IdentityKeyPair } from '../keys.js';
import { MAX_DEVICE_ID, MAX_DEVICES_PER_ACCOUNT, MAX_REGISTRATION_ID } from '../limits.js';
import { ProtoWriter, readProto, readProtoFields, requiredBytes, requiredUint32, requiredUint64 } from '../codec/protobuf.js';
import { fromUtf8, utf8 } from './text.js';
import { isCanonicalUsername } from './username.js';

const CONTEXT = utf8('Parley device list v1\0');

/** One device of an account. */
export interface DeviceEntry {
  readonly deviceId: number;
  readonly registrationId: number;
  /** The device's serialized (33-byte) authentication key. */
  readonly authKey: Uint8Array;
}

/** An account's devices at one version. */
export interface DeviceList {
  /** The account's canonical username, so that a list cannot be moved to another account. */
  readonly username: string;
  /** Starts at 1 and grows with every change. */
  readonly version: number;
  readonly devices: readonly DeviceEntry[];
}

/** A device list as it travels: the exact bytes signed, and the signature. */
export interface SignedDeviceList {
  readonly list: Uint8Array;
  readonly signature: Uint8Array;
}

const invalid = (message: string) => new ProtocolError('INVALID_ENCODING', `device list: ${message}`);

/** Encodes a device list. @throws RangeError for values out of range. */
export function encodeDeviceList(list: DeviceList): Uint8Array {
  const writer = new ProtoWriter().bytes(1, utf8(list.username)).uint64(2, list.version);
  for (const device of list.devices) {
    writer.bytes(
      3,
      new ProtoWriter().uint32(1, device.deviceId).uint32(2, device.registrationId).bytes(3, device.authKey).finish(),
    );
  }
  return writer.finish();
}

/**
 * Decodes and checks a device list: a canonical username, a positive version,
 * 1 to MAX_DEVICES_PER_ACCOUNT devices with distinct ids in range, valid keys.
 * @throws ProtocolError `INVALID_ENCODING` or `INVALID_KEY`, nothing else.
 */
export function decodeDeviceList(bytes: Uint8Array): DeviceList {
  const fields = readProto(bytes);
  const username = fromUtf8(requiredBytes(fields, 1, 'username'), 'username');
  if (!isCanonicalUsername(username)) throw invalid('username is not canonical');
  const version = requiredUint64(fields, 2, 'version');
  if (version < 1) throw invalid('version must be at least 1');
  const devices: DeviceEntry[] = [];
  const seen = new Set<number>();
  for (const [field, value] of readProtoFields(bytes)) {
    if (field !== 3) continue;
    if (!(value instanceof Uint8Array)) throw invalid('device is not a message');
    if (devices.length === MAX_DEVICES_PER_ACCOUNT) throw invalid(`more than ${MAX_DEVICES_PER_ACCOUNT} devices`);
    const device = readProto(value);
    const deviceId = requiredUint32(device, 1, 'device id');
    const registrationId = requiredUint32(device, 2, 'registration id');
    if (deviceId < 1 || deviceId > MAX_DEVICE_ID) throw invalid(`device id ${deviceId} out of range`);
    if (registrationId < 1 || registrationId > MAX_REGISTRATION_ID) throw invalid(`registration id ${registrationId} out of range`);
    if (seen.has(deviceId)) throw invalid(`device ${deviceId} listed twice`);
    seen.add(deviceId);
    const authKey = requiredBytes(device, 3, 'auth key').slice();
    decodePublicKey(authKey, 'auth key');
    devices.push({ deviceId, registrationId, authKey });
  }
  if (devices.length === 0) throw invalid('no devices');
  return { username, version, devices };
}

/** Signs a device list with the account's identity key. */
export async function signDeviceList(
  provider: CryptoProvider,
  identity: IdentityKeyPair,
  list: DeviceList,
): Promise<SignedDeviceList> {
  const encoded = encodeDeviceList(list);
  const signature = await xeddsaSign(provider, identity.privateKey, concatBytes(CONTEXT, encoded));
  return { list: encoded, signature };
}

/**
 * Verifies a signed device list against the account's identity key, then decodes it.
 * @throws ProtocolError `INVALID_SIGNATURE` if the signature does not verify,
 *   or what {@link decodeDeviceList} throws.
 */
export async function verifyDeviceList(
  provider: CryptoProvider,
  identityKey: Uint8Array,
  signed: SignedDeviceList,
): Promise<DeviceList> {
  const key = decodePublicKey(identityKey, 'identity key');
  if (!(await xeddsaVerify(provider, key, concatBytes(CONTEXT, signed.list), signed.signature))) {
    throw new ProtocolError('INVALID_SIGNATURE', 'the device list is not signed by the identity key');
  }
  return decodeDeviceList(signed.list);
}
