/**
 * `SenderKeyDistributionMessage` and `SenderKeyMessage` in libsignal's wire
 * layout (rust/protocol/src/proto/wire.proto, protocol.rs), version 3:
 *
 *   SenderKeyDistributionMessage = version ‖ proto{distribution_uuid=1, chain_id=2, iteration=3, chain_key=4, signing_key=5}
 *   SenderKeyMessage             = version ‖ proto{distribution_uuid=1, chain_id=2, iteration=3, ciphertext=4} ‖ signature[64]
 *   signature                    = XEdDSA(signing_key, version ‖ proto)
 *   version                      = (3 << 4) | 3
 *
 * The distribution id is a UUID (16 bytes on the wire, the lowercase
 * hyphenated string in the API); the signing key travels serialized (0x05 ‖ u).
 * Decoders take hostile bytes and throw only `ProtocolError('INVALID_ENCODING')`
 * — a version other than 3 included; every field they return is a copy.
 */
import {
  concatBytes,
  deserializePublicKey,
  fromHex,
  SecretBytes,
  serializePublicKey,
  SIGNATURE_LENGTH,
  toHex,
  xeddsaSign,
  xeddsaVerify,
  type BytesLike,
  type CryptoProvider,
} from '@parley/crypto';

import { ProtocolError } from '../errors.js';
import { MAX_MESSAGE_BYTES } from '../limits.js';
import { SENDER_KEY_MESSAGE_VERSION } from '../senderKeys/senderKeyState.js';
import { ProtoWriter, readProto, requiredBytes, requiredUint32 } from './protobuf.js';

/** libsignal's CiphertextMessageType for a SenderKeyMessage. */
export const SENDER_KEY_MESSAGE_TYPE = 7;

const VERSION_BYTE = Uint8Array.of((SENDER_KEY_MESSAGE_VERSION << 4) | SENDER_KEY_MESSAGE_VERSION);
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CHAIN_KEY_LENGTH = 32;

export interface SenderKeyDistributionMessage {
  readonly version: number;
  /** Lowercase hyphenated UUID. */
  readonly distributionId: string;
  readonly chainId: number;
  readonly iteration: number;
  /** The chain key at `iteration` (32 bytes): whoever holds it can read the sender's messages from there on. */
  readonly chainKey: SecretBytes;
  /** Raw 32-byte Curve25519 public key. */
  readonly signingKey: Uint8Array;
  readonly serialized: Uint8Array;
}

export interface SenderKeyMessage {
  readonly version: number;
  /** Lowercase hyphenated UUID. */
  readonly distributionId: string;
  readonly chainId: number;
  readonly iteration: number;
  readonly ciphertext: Uint8Array;
  readonly signature: Uint8Array;
  /** The whole message as sent, signature included. */
  readonly serialized: Uint8Array;
}

export type SenderKeyMessageFields = Pick<SenderKeyMessage, 'distributionId' | 'chainId' | 'iteration' | 'ciphertext'>;
export type SenderKeyDistributionFields = Omit<SenderKeyDistributionMessage, 'version' | 'serialized'>;

function invalid(message: string): ProtocolError {
  return new ProtocolError('INVALID_ENCODING', message);
}

/**
 * The 16 bytes of a UUID string.
 * @throws RangeError unless `uuid` is a lowercase hyphenated UUID.
 */
export function uuidToBytes(uuid: string): Uint8Array {
  if (typeof uuid !== 'string' || !UUID_PATTERN.test(uuid)) throw new RangeError('distributionId must be a lowercase hyphenated UUID');
  return fromHex(uuid.replaceAll('-', ''));
}

/** The lowercase hyphenated form of 16 UUID bytes. */
export function bytesToUuid(bytes: Uint8Array): string {
  const hex = toHex(bytes);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function checkInput(bytes: Uint8Array, minimum: number, name: string): void {
  if (!(bytes instanceof Uint8Array)) throw invalid(`a ${name} must be bytes`);
  if (bytes.length > MAX_MESSAGE_BYTES) throw invalid(`${name} of ${bytes.length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
  if (bytes.length < minimum) throw invalid(`${name} too short`);
  if ((bytes[0] as number) >> 4 !== SENDER_KEY_MESSAGE_VERSION) throw invalid(`unknown ${name} version ${(bytes[0] as number) >> 4}`);
}

function distributionIdOf(fields: ReturnType<typeof readProto>): string {
  const uuid = requiredBytes(fields, 1, 'distribution_uuid');
  if (uuid.length !== 16) throw invalid('distribution_uuid must be 16 bytes');
  return bytesToUuid(uuid);
}

/** Serializes a SenderKeyDistributionMessage, fields in tag order as prost writes them. */
export function encodeSenderKeyDistributionMessage(fields: SenderKeyDistributionFields): SenderKeyDistributionMessage {
  const serialized = new ProtoWriter()
    .bytes(1, uuidToBytes(fields.distributionId))
    .uint32(2, fields.chainId)
    .uint32(3, fields.iteration)
    .bytes(4, fields.chainKey.expose())
    .bytes(5, serializePublicKey(fields.signingKey))
    .finish(VERSION_BYTE);
  return { version: SENDER_KEY_MESSAGE_VERSION, ...fields, serialized };
}

/** Parses a SenderKeyDistributionMessage (libsignal's checks: every field present, a 32-byte chain key, a 33-byte key). */
export function decodeSenderKeyDistributionMessage(bytes: Uint8Array): SenderKeyDistributionMessage {
  checkInput(bytes, 1 + 32 + 32, 'SenderKeyDistributionMessage');
  const fields = readProto(bytes.subarray(1));
  const distributionId = distributionIdOf(fields);
  const chainId = requiredUint32(fields, 2, 'chain_id');
  const iteration = requiredUint32(fields, 3, 'iteration');
  const chainKey = requiredBytes(fields, 4, 'chain_key');
  const signingKey = requiredBytes(fields, 5, 'signing_key');
  if (chainKey.length !== CHAIN_KEY_LENGTH) throw invalid('chain_key must be 32 bytes');
  let rawSigningKey: Uint8Array;
  try {
    rawSigningKey = deserializePublicKey(signingKey).slice();
  } catch (cause) {
    throw new ProtocolError('INVALID_ENCODING', 'signing_key is not a Curve25519 public key', {}, { cause });
  }
  return {
    version: SENDER_KEY_MESSAGE_VERSION,
    distributionId,
    chainId,
    iteration,
    chainKey: new SecretBytes(chainKey.slice()),
    signingKey: rawSigningKey,
    serialized: bytes.slice(),
  };
}

/** The signed part of a SenderKeyMessage: version ‖ proto, with room for the signature after it. */
export function encodeSenderKeyMessageBody(fields: SenderKeyMessageFields): Uint8Array {
  return new ProtoWriter()
    .bytes(1, uuidToBytes(fields.distributionId))
    .uint32(2, fields.chainId)
    .uint32(3, fields.iteration)
    .bytes(4, fields.ciphertext)
    .finish(VERSION_BYTE);
}

/**
 * Serializes and signs a SenderKeyMessage with the sender's 32-byte Curve25519
 * signing key (XEdDSA); its public key, when given, spares a base-point
 * multiplication per message (see `xeddsaSign`).
 */
export async function encodeSenderKeyMessage(
  provider: CryptoProvider,
  fields: SenderKeyMessageFields,
  signingKey: BytesLike,
  signingPublicKey?: Uint8Array,
): Promise<SenderKeyMessage> {
  const body = encodeSenderKeyMessageBody(fields);
  const signature = await xeddsaSign(provider, signingKey, body, signingPublicKey);
  return { version: SENDER_KEY_MESSAGE_VERSION, ...fields, signature, serialized: concatBytes(body, signature) };
}

/** Parses a SenderKeyMessage without checking its signature (that needs the sender's state). */
export function decodeSenderKeyMessage(bytes: Uint8Array): SenderKeyMessage {
  checkInput(bytes, 1 + SIGNATURE_LENGTH, 'SenderKeyMessage');
  const fields = readProto(bytes.subarray(1, bytes.length - SIGNATURE_LENGTH));
  return {
    version: SENDER_KEY_MESSAGE_VERSION,
    distributionId: distributionIdOf(fields),
    chainId: requiredUint32(fields, 2, 'chain_id'),
    iteration: requiredUint32(fields, 3, 'iteration'),
    ciphertext: requiredBytes(fields, 4, 'ciphertext').slice(),
    signature: bytes.slice(bytes.length - SIGNATURE_LENGTH),
    serialized: bytes.slice(),
  };
}

/** Whether the message's signature verifies under `signingKey` (raw 32 bytes). Never throws on bad bytes. */
export async function verifySenderKeyMessageSignature(provider: CryptoProvider, message: SenderKeyMessage, signingKey: Uint8Array): Promise<boolean> {
  const { serialized } = message;
  return xeddsaVerify(provider, signingKey, serialized.subarray(0, serialized.length - SIGNATURE_LENGTH), message.signature);
}
