/**
 * Long-term and prekey material in libsignal's forms, and the prekey bundle a
 * server hands out.
 *
 * - An identity key is a Curve25519 key pair; its public half travels serialized (0x05 ‖ u).
 * - A signed prekey's signature is XEdDSA by the identity key over the serialized public key.
 * - A Kyber prekey's signature is XEdDSA by the identity key over the type-prefixed KEM public key.
 *
 * Public keys inside protocol state are kept raw (32 bytes) except identities,
 * which stay serialized because that is the form the MAC and fingerprints hash.
 */
import {
  deserializePublicKey,
  isCryptoError,
  KemType,
  serializePublicKey,
  xeddsaSign,
  xeddsaVerify,
  type CryptoProvider,
  type SecretBytes,
} from '@parley/crypto';

import { ProtocolError } from './errors.js';

/** An identity: the serialized public key (33 bytes) and the private key. */
export interface IdentityKeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: SecretBytes;
}

/** A one-time Curve25519 prekey. */
export interface PreKeyRecord {
  readonly id: number;
  readonly publicKey: Uint8Array;
  readonly privateKey: SecretBytes;
}

/** A medium-term Curve25519 prekey, signed by the identity key. */
export interface SignedPreKeyRecord {
  readonly id: number;
  readonly timestamp: number;
  readonly publicKey: Uint8Array;
  readonly privateKey: SecretBytes;
  readonly signature: Uint8Array;
}

/** A Kyber prekey, signed by the identity key. A last-resort key survives use; a one-time key does not. */
export interface KyberPreKeyRecord {
  readonly id: number;
  readonly timestamp: number;
  /** Type-prefixed KEM public key. */
  readonly publicKey: Uint8Array;
  /** Type-prefixed KEM secret key. */
  readonly secretKey: SecretBytes;
  readonly signature: Uint8Array;
  readonly lastResort: boolean;
}

/** What a server publishes for one device. Keys are serialized as on the wire. */
export interface PreKeyBundle {
  readonly registrationId: number;
  readonly deviceId: number;
  readonly preKeyId?: number;
  /** Serialized (33-byte) one-time prekey. */
  readonly preKey?: Uint8Array;
  readonly signedPreKeyId: number;
  /** Serialized (33-byte) signed prekey. */
  readonly signedPreKey: Uint8Array;
  readonly signedPreKeySignature: Uint8Array;
  /** Serialized (33-byte) identity key. */
  readonly identityKey: Uint8Array;
  readonly kyberPreKeyId: number;
  /** Type-prefixed KEM public key. */
  readonly kyberPreKey: Uint8Array;
  readonly kyberPreKeySignature: Uint8Array;
}

/**
 * A copy of the raw key inside a serialized Curve25519 public key from the
 * network (a copy, so that state never pins or shares the caller's buffer).
 * @throws ProtocolError `INVALID_KEY` for anything but 0x05 ‖ 32 bytes.
 */
export function decodePublicKey(serialized: Uint8Array, name: string): Uint8Array {
  try {
    return deserializePublicKey(serialized).slice();
  } catch (cause) {
    if (isCryptoError(cause)) throw new ProtocolError('INVALID_KEY', `${name} is not a Curve25519 public key`, {}, { cause });
    throw cause;
  }
}

/** A fresh identity key pair. */
export async function generateIdentityKeyPair(provider: CryptoProvider): Promise<IdentityKeyPair> {
  const { privateKey, publicKey } = await provider.x25519GenerateKeyPair();
  return { publicKey: serializePublicKey(publicKey), privateKey };
}

/** A registration id as libsignal draws them: 14 random bits, never zero. */
export function generateRegistrationId(provider: CryptoProvider): number {
  const bytes = provider.randomBytes(2);
  return (((bytes[0]! << 8) | bytes[1]!) & 0x3fff) || 1;
}

/** `count` one-time prekeys with consecutive ids from `startId`. */
export async function generatePreKeys(provider: CryptoProvider, startId: number, count: number): Promise<PreKeyRecord[]> {
  const records: PreKeyRecord[] = [];
  for (let i = 0; i < count; i++) {
    const { privateKey, publicKey } = await provider.x25519GenerateKeyPair();
    records.push({ id: startId + i, publicKey, privateKey });
  }
  return records;
}

/** A signed prekey: XEdDSA by `identity` over its serialized public key. */
export async function generateSignedPreKey(
  provider: CryptoProvider,
  identity: IdentityKeyPair,
  id: number,
  timestamp: number,
): Promise<SignedPreKeyRecord> {
  const { privateKey, publicKey } = await provider.x25519GenerateKeyPair();
  const signature = await xeddsaSign(provider, identity.privateKey, serializePublicKey(publicKey));
  return { id, timestamp, publicKey, privateKey, signature };
}

/** A Kyber prekey (Kyber1024 by default, as libsignal generates): XEdDSA by `identity` over its public key. */
export async function generateKyberPreKey(
  provider: CryptoProvider,
  identity: IdentityKeyPair,
  id: number,
  timestamp: number,
  options: { lastResort?: boolean; type?: KemType } = {},
): Promise<KyberPreKeyRecord> {
  const { publicKey, secretKey } = await provider.kemGenerateKeyPair(options.type ?? KemType.Kyber1024);
  const signature = await xeddsaSign(provider, identity.privateKey, publicKey);
  return { id, timestamp, publicKey, secretKey, signature, lastResort: options.lastResort ?? false };
}

/**
 * Whether `signature` is the identity key's signature over a prekey's
 * serialized public key (a Curve25519 key, or a type-prefixed KEM key), as in
 * a prekey bundle.
 * @throws ProtocolError `INVALID_KEY` if `identityKey` is not a serialized Curve25519 key.
 */
export async function verifyPreKeySignature(
  provider: CryptoProvider,
  identityKey: Uint8Array,
  publicKey: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  return xeddsaVerify(provider, decodePublicKey(identityKey, 'identity key'), publicKey, signature);
}
