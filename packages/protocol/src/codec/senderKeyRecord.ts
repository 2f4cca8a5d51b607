/**
 * Sender key records as bytes, in libsignal's storage form
 * (rust/protocol/src/proto/storage.proto, proto3), so that a record written by
 * either implementation is read by the other, byte for byte:
 *
 *   SenderKeyRecordStructure = proto{ sender_key_states=1: repeated State (newest first) }
 *   State                    = proto{ chain_id=1, sender_chain_key=2: proto{ iteration=1, seed=2 },
 *                                     sender_signing_key=3: proto{ public=1 (0x05 ‖ u), private=2 (absent on receivers) },
 *                                     sender_message_keys=4: repeated proto{ iteration=1, seed=2 } (oldest first),
 *                                     message_version=5 }
 *
 * As proto3 (prost) does, scalar fields holding 0 and empty bytes are left
 * out, and a missing message_version reads as 3. The bytes hold secrets, so
 * serialization returns `SecretBytes`. Decoding treats stored bytes as
 * untrusted and throws only `ProtocolError('INVALID_STATE')`.
 */
import { deserializePublicKey, isCryptoError, SecretBytes, serializePublicKey } from '@parley/crypto';

import { isProtocolError, ProtocolError } from '../errors.js';
import { MAX_SENDER_KEY_STATES, MAX_SENDER_MESSAGE_KEYS } from '../limits.js';
import type { SenderMessageKeySeed } from '../senderKeys/senderChainKey.js';
import type { SenderKeyRecord } from '../senderKeys/senderKeyRecord.js';
import { SENDER_KEY_MESSAGE_VERSION, type SenderKeyState } from '../senderKeys/senderKeyState.js';
import { optionalBytes, optionalUint32, ProtoWriter, readProto, repeatedBytes, type ProtoValue } from './protobuf.js';

const KEY_LENGTH = 32;

/** proto3: a scalar holding its default is not written. */
function uint32IfSet(writer: ProtoWriter, field: number, value: number): ProtoWriter {
  return value === 0 ? writer : writer.uint32(field, value);
}

function bytesIfSet(writer: ProtoWriter, field: number, value: Uint8Array): ProtoWriter {
  return value.length === 0 ? writer : writer.bytes(field, value);
}

function encodeSeed(iteration: number, seed: Uint8Array): Uint8Array {
  return bytesIfSet(uint32IfSet(new ProtoWriter(), 1, iteration), 2, seed).finish();
}

function encodeState(state: SenderKeyState): Uint8Array {
  const signing = bytesIfSet(
    new ProtoWriter().bytes(1, serializePublicKey(state.signingKey.publicKey)),
    2,
    state.signingKey.privateKey?.expose() ?? new Uint8Array(0),
  ).finish();
  const writer = uint32IfSet(new ProtoWriter(), 1, state.chainId)
    .bytes(2, encodeSeed(state.chainKey.iteration, state.chainKey.key.expose()))
    .bytes(3, signing);
  for (const key of state.skippedKeys) writer.bytes(4, encodeSeed(key.iteration, key.seed.expose()));
  return uint32IfSet(writer, 5, state.messageVersion).finish();
}

/** Serializes a record as libsignal's `SenderKeyRecord::serialize` does. */
export function serializeSenderKeyRecord(record: SenderKeyRecord): SecretBytes {
  const writer = new ProtoWriter();
  for (const state of record.states) writer.bytes(1, encodeState(state));
  return new SecretBytes(writer.finish());
}

function decodeSeed(bytes: Uint8Array, name: string): SenderMessageKeySeed {
  const fields = readProto(bytes);
  const seed = optionalBytes(fields, 2, `${name}.seed`) ?? new Uint8Array(0);
  if (seed.length !== KEY_LENGTH) throw new ProtocolError('INVALID_ENCODING', `${name}.seed must be 32 bytes`);
  return { iteration: optionalUint32(fields, 1, `${name}.iteration`) ?? 0, seed: new SecretBytes(seed.slice()) };
}

function decodeSigningKey(value: ProtoValue | undefined): SenderKeyState['signingKey'] {
  if (!(value instanceof Uint8Array)) throw new ProtocolError('INVALID_ENCODING', 'missing sender_signing_key');
  const fields = readProto(value);
  const publicKey = deserializePublicKey(optionalBytes(fields, 1, 'public') ?? new Uint8Array(0)).slice();
  const privateKey = optionalBytes(fields, 2, 'private') ?? new Uint8Array(0);
  if (privateKey.length !== 0 && privateKey.length !== KEY_LENGTH) throw new ProtocolError('INVALID_ENCODING', 'private signing key must be 32 bytes');
  return { publicKey, privateKey: privateKey.length === 0 ? undefined : new SecretBytes(privateKey.slice()) };
}

function decodeState(bytes: Uint8Array): SenderKeyState {
  const fields = readProto(bytes);
  const chain = fields.get(2);
  if (!(chain instanceof Uint8Array)) throw new ProtocolError('INVALID_ENCODING', 'missing sender_chain_key');
  const { iteration, seed } = decodeSeed(chain, 'sender_chain_key');
  const skipped = repeatedBytes(bytes, 4, 'sender_message_keys');
  if (skipped.length > MAX_SENDER_MESSAGE_KEYS) throw new ProtocolError('INVALID_ENCODING', 'too many sender message keys');
  const version = optionalUint32(fields, 5, 'message_version') ?? 0;
  return {
    messageVersion: version === 0 ? SENDER_KEY_MESSAGE_VERSION : version,
    chainId: optionalUint32(fields, 1, 'chain_id') ?? 0,
    chainKey: { iteration, key: seed },
    signingKey: decodeSigningKey(fields.get(3)),
    skippedKeys: skipped.map((k) => decodeSeed(k, 'sender_message_key')),
  };
}

/**
 * Reads a record written by {@link serializeSenderKeyRecord} or by libsignal.
 * @throws ProtocolError `INVALID_STATE` for any bytes it cannot fully read.
 */
export function deserializeSenderKeyRecord(bytes: Uint8Array): SenderKeyRecord {
  try {
    if (!(bytes instanceof Uint8Array)) throw new ProtocolError('INVALID_ENCODING', 'a record must be bytes');
    const states = repeatedBytes(bytes, 1, 'sender_key_states');
    if (states.length > MAX_SENDER_KEY_STATES) throw new ProtocolError('INVALID_ENCODING', 'too many sender key states');
    return { states: states.map(decodeState) };
  } catch (cause) {
    if (isProtocolError(cause) || isCryptoError(cause)) {
      throw new ProtocolError('INVALID_STATE', `unreadable sender key record: ${cause.message}`, {}, { cause });
    }
    throw cause;
  }
}
