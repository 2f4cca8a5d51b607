/**
 * `SignalMessage` and `PreKeySignalMessage` in libsignal's wire layout
 * (rust/protocol/src/proto/wire.proto), version 4 (PQXDH).
 *
 *   SignalMessage      = version ‖ proto{ratchet_key=1, counter=2, previous_counter=3, ciphertext=4, pq_ratchet=5} ‖ mac[8]
 *   mac                = HMAC-SHA256(mac_key, IK_sender ‖ IK_receiver ‖ version ‖ proto)[0..8]
 *   PreKeySignalMessage = version ‖ proto{pre_key_id=1, base_key=2, identity_key=3, message=4,
 *                                         registration_id=5, signed_pre_key_id=6, kyber_pre_key_id=7, kyber_ciphertext=8}
 *   version            = (4 << 4) | 4
 *
 * Identity and ratchet keys travel in their 33-byte serialized form (0x05 ‖ u).
 * Decoders take hostile bytes and throw only `ProtocolError`; every field they
 * return is a copy, except `serialized`, the input itself, which the MAC covers.
 */
import { concatBytes, constantTimeEqual, serializePublicKey, type BytesLike, type CryptoProvider } from '@parley/crypto';

import { ProtocolError } from '../errors.js';
import { MAX_MESSAGE_BYTES } from '../limits.js';
import { decodePublicKey } from '../keys.js';
import {
  optionalBytes,
  optionalUint32,
  ProtoWriter,
  readProto,
  requiredBytes,
  requiredUint32,
} from './protobuf.js';

/** The message version Parley speaks: PQXDH sessions. */
export const CURRENT_VERSION = 4;
/** Version 3 is X3DH without Kyber, which libsignal and Parley no longer accept. */
export const PRE_KYBER_VERSION = 3;
/** Bytes of the truncated MAC at the end of a SignalMessage. */
export const MAC_LENGTH = 8;

const VERSION_BYTE = Uint8Array.of((CURRENT_VERSION << 4) | CURRENT_VERSION);

/** libsignal's CiphertextMessageType values. */
export const MessageType = { Whisper: 2, PreKey: 3 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export interface SignalMessage {
  readonly version: number;
  /** The sender's current ratchet public key, raw 32 bytes. */
  readonly ratchetKey: Uint8Array;
  readonly counter: number;
  readonly previousCounter: number;
  readonly ciphertext: Uint8Array;
  /** SPQR data; Parley does not speak SPQR yet and sends none. */
  readonly pqRatchet: Uint8Array;
  /** The whole message as sent, MAC included. */
  readonly serialized: Uint8Array;
}

export interface PreKeySignalMessage {
  readonly version: number;
  readonly registrationId: number;
  readonly preKeyId: number | undefined;
  readonly signedPreKeyId: number;
  readonly kyberPreKeyId: number;
  /** Type-prefixed KEM ciphertext. */
  readonly kyberCiphertext: Uint8Array;
  /** Alice's base key, raw 32 bytes. */
  readonly baseKey: Uint8Array;
  /** Alice's identity key, serialized (33 bytes). */
  readonly identityKey: Uint8Array;
  readonly message: SignalMessage;
  readonly serialized: Uint8Array;
}

function checkSize(bytes: Uint8Array): void {
  if (!(bytes instanceof Uint8Array)) throw new ProtocolError('INVALID_ENCODING', 'a message must be bytes');
  if (bytes.length > MAX_MESSAGE_BYTES) {
    throw new ProtocolError('INVALID_ENCODING', `message of ${bytes.length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
  }
}

function checkVersion(bytes: Uint8Array): number {
  const version = (bytes[0] as number) >> 4;
  if (version !== CURRENT_VERSION) {
    const why = version === PRE_KYBER_VERSION ? 'X3DH (version 3) is no longer accepted' : `unknown message version ${version}`;
    throw new ProtocolError('UNSUPPORTED_VERSION', why);
  }
  return version;
}

/** HMAC-SHA256 over both identities and the message, truncated to 8 bytes. */
async function computeMac(
  provider: CryptoProvider,
  macKey: BytesLike,
  senderIdentity: Uint8Array,
  receiverIdentity: Uint8Array,
  content: Uint8Array,
): Promise<Uint8Array> {
  const tag = await provider.hmacSha256(macKey, concatBytes(senderIdentity, receiverIdentity, content));
  return tag.subarray(0, MAC_LENGTH);
}

export interface SignalMessageFields {
  readonly ratchetKey: Uint8Array;
  readonly counter: number;
  readonly previousCounter: number;
  readonly ciphertext: Uint8Array;
}

/** Serializes and MACs a SignalMessage. Identities are the 33-byte serialized keys. */
export async function encodeSignalMessage(
  provider: CryptoProvider,
  fields: SignalMessageFields,
  macKey: BytesLike,
  senderIdentity: Uint8Array,
  receiverIdentity: Uint8Array,
): Promise<SignalMessage> {
  const body = new ProtoWriter()
    .bytes(1, serializePublicKey(fields.ratchetKey))
    .uint32(2, fields.counter)
    .uint32(3, fields.previousCounter)
    .bytes(4, fields.ciphertext)
    .finish(VERSION_BYTE, MAC_LENGTH);
  const content = body.subarray(0, body.length - MAC_LENGTH);
  body.set(await computeMac(provider, macKey, senderIdentity, receiverIdentity, content), content.length);
  return { version: CURRENT_VERSION, ...fields, pqRatchet: new Uint8Array(0), serialized: body };
}

/** Parses a SignalMessage without checking its MAC (that needs the session's keys). */
export function decodeSignalMessage(bytes: Uint8Array): SignalMessage {
  checkSize(bytes);
  if (bytes.length < MAC_LENGTH + 1) throw new ProtocolError('INVALID_ENCODING', 'SignalMessage too short');
  const version = checkVersion(bytes);
  const fields = readProto(bytes.subarray(1, bytes.length - MAC_LENGTH));
  return {
    version,
    ratchetKey: decodePublicKey(requiredBytes(fields, 1, 'ratchet_key'), 'ratchet_key'),
    counter: requiredUint32(fields, 2, 'counter'),
    previousCounter: optionalUint32(fields, 3, 'previous_counter') ?? 0,
    ciphertext: requiredBytes(fields, 4, 'ciphertext').slice(),
    pqRatchet: optionalBytes(fields, 5, 'pq_ratchet')?.slice() ?? new Uint8Array(0),
    serialized: bytes,
  };
}

/** Checks a SignalMessage's MAC in constant time. */
export async function verifySignalMessageMac(
  provider: CryptoProvider,
  message: SignalMessage,
  macKey: BytesLike,
  senderIdentity: Uint8Array,
  receiverIdentity: Uint8Array,
): Promise<boolean> {
  const { serialized } = message;
  const content = serialized.subarray(0, serialized.length - MAC_LENGTH);
  const ours = await computeMac(provider, macKey, senderIdentity, receiverIdentity, content);
  return constantTimeEqual(ours, serialized.subarray(serialized.length - MAC_LENGTH));
}

export type PreKeySignalMessageFields = Omit<PreKeySignalMessage, 'version' | 'serialized'>;

/** Serializes a PreKeySignalMessage around an already serialized SignalMessage, fields in tag order. */
export function encodePreKeySignalMessage(fields: PreKeySignalMessageFields): PreKeySignalMessage {
  const writer = new ProtoWriter();
  if (fields.preKeyId !== undefined) writer.uint32(1, fields.preKeyId);
  writer
    .bytes(2, serializePublicKey(fields.baseKey))
    .bytes(3, fields.identityKey)
    .bytes(4, fields.message.serialized)
    .uint32(5, fields.registrationId)
    .uint32(6, fields.signedPreKeyId)
    .uint32(7, fields.kyberPreKeyId)
    .bytes(8, fields.kyberCiphertext);
  return { version: CURRENT_VERSION, ...fields, serialized: writer.finish(VERSION_BYTE) };
}

/** Parses a PreKeySignalMessage and the SignalMessage inside it. */
export function decodePreKeySignalMessage(bytes: Uint8Array): PreKeySignalMessage {
  checkSize(bytes);
  if (bytes.length < 1) throw new ProtocolError('INVALID_ENCODING', 'PreKeySignalMessage is empty');
  const version = checkVersion(bytes);
  const fields = readProto(bytes.subarray(1));
  const kyberPreKeyId = optionalUint32(fields, 7, 'kyber_pre_key_id');
  const kyberCiphertext = optionalBytes(fields, 8, 'kyber_ciphertext');
  if (kyberPreKeyId === undefined || kyberCiphertext === undefined) {
    throw new ProtocolError('INVALID_ENCODING', 'a version 4 PreKeySignalMessage must carry a Kyber prekey id and ciphertext');
  }
  const identityKey = requiredBytes(fields, 3, 'identity_key').slice();
  decodePublicKey(identityKey, 'identity_key');
  return {
    version,
    registrationId: optionalUint32(fields, 5, 'registration_id') ?? 0,
    preKeyId: optionalUint32(fields, 1, 'pre_key_id'),
    signedPreKeyId: requiredUint32(fields, 6, 'signed_pre_key_id'),
    kyberPreKeyId,
    kyberCiphertext: kyberCiphertext.slice(),
    baseKey: decodePublicKey(requiredBytes(fields, 2, 'base_key'), 'base_key'),
    identityKey,
    message: decodeSignalMessage(requiredBytes(fields, 4, 'message')),
    serialized: bytes,
  };
}
