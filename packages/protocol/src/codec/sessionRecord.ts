/**
 * Session records as bytes, for stores that persist them. Parley's own format,
 * versioned so later releases can read what earlier ones wrote:
 *
 *   record        = format_version (0x01) ‖ proto{ current=1: State, previous=2: repeated State (newest first) }
 *   State         = proto{ version=1, local_identity=2, remote_identity=3, local_registration_id=4,
 *                          remote_registration_id=5, alice_base_key=6, root_key=7, sender_ratchet_public=8,
 *                          sender_ratchet_private=9, sender_chain_key=10, sender_chain_index=11,
 *                          previous_counter=12, receiver_chains=13: repeated Chain, pending_prekey=14: Pending }
 *   Chain         = proto{ ratchet_key=1, chain_key=2, index=3, skipped=4: repeated proto{ counter=1, seed=2 } (oldest first) }
 *   Pending       = proto{ pre_key_id=1 (absent when none), signed_pre_key_id=2, kyber_pre_key_id=3,
 *                          kyber_ciphertext=4, base_key=5, timestamp_ms=6 }
 *
 * The bytes hold every secret of the session, so serialization returns them
 * as `SecretBytes`. Decoding treats stored bytes as untrusted (a disk can be
 * corrupted or tampered with) and throws only `ProtocolError('INVALID_STATE')`.
 */
import { SecretBytes } from '@parley/crypto';

import { isProtocolError, ProtocolError } from '../errors.js';
import { MAX_MESSAGE_KEYS, MAX_RECEIVER_CHAINS, ARCHIVED_STATES_MAX_LENGTH } from '../limits.js';
import type { SessionRecord } from '../sessionRecord.js';
import type { PendingPreKey, ReceiverChain, SessionState } from '../sessionState.js';
import {
  optionalBytes,
  optionalUint32,
  ProtoWriter,
  readProto,
  repeatedBytes,
  requiredBytes,
  requiredUint32,
  requiredUint64,
  type ProtoValue,
} from './protobuf.js';

/** The format this code writes; it reads only this one so far. */
export const SESSION_RECORD_FORMAT = 1;

function encodeChain(chain: ReceiverChain): Uint8Array {
  const writer = new ProtoWriter()
    .bytes(1, chain.ratchetKey)
    .bytes(2, chain.chainKey.key.expose())
    .uint32(3, chain.chainKey.index);
  for (const [counter, seed] of chain.skipped) {
    writer.bytes(4, new ProtoWriter().uint32(1, counter).bytes(2, seed.expose()).finish());
  }
  return writer.finish();
}

function encodePending(pending: PendingPreKey): Uint8Array {
  const writer = new ProtoWriter();
  if (pending.preKeyId !== undefined) writer.uint32(1, pending.preKeyId);
  return writer
    .uint32(2, pending.signedPreKeyId)
    .uint32(3, pending.kyberPreKeyId)
    .bytes(4, pending.kyberCiphertext)
    .bytes(5, pending.baseKey)
    .uint64(6, pending.timestamp)
    .finish();
}

function encodeState(state: SessionState): Uint8Array {
  const writer = new ProtoWriter()
    .uint32(1, state.version)
    .bytes(2, state.localIdentityKey)
    .bytes(3, state.remoteIdentityKey)
    .uint32(4, state.localRegistrationId)
    .uint32(5, state.remoteRegistrationId)
    .bytes(6, state.aliceBaseKey)
    .bytes(7, state.rootKey.expose())
    .bytes(8, state.senderRatchet.publicKey)
    .bytes(9, state.senderRatchet.privateKey.expose())
    .bytes(10, state.senderChain.key.expose())
    .uint32(11, state.senderChain.index)
    .uint32(12, state.previousCounter);
  for (const chain of state.receiverChains) writer.bytes(13, encodeChain(chain));
  if (state.pendingPreKey !== undefined) writer.bytes(14, encodePending(state.pendingPreKey));
  return writer.finish();
}

/** Serializes a record with every secret in it. */
export function serializeSessionRecord(record: SessionRecord): SecretBytes {
  const writer = new ProtoWriter();
  if (record.current !== undefined) writer.bytes(1, encodeState(record.current));
  for (const state of record.previous) writer.bytes(2, encodeState(state));
  return new SecretBytes(writer.finish(Uint8Array.of(SESSION_RECORD_FORMAT)));
}

type Fields = Map<number, ProtoValue>;

function sized(fields: Fields, field: number, name: string, length: number): Uint8Array {
  const value = requiredBytes(fields, field, name);
  if (value.length !== length) throw new ProtocolError('INVALID_ENCODING', `${name} must be ${length} bytes`);
  return value.slice();
}

const secret = (fields: Fields, field: number, name: string) => new SecretBytes(sized(fields, field, name, 32));

function decodeChain(bytes: Uint8Array): ReceiverChain {
  const fields = readProto(bytes);
  const skippedEntries = repeatedBytes(bytes, 4, 'skipped');
  if (skippedEntries.length > MAX_MESSAGE_KEYS) throw new ProtocolError('INVALID_ENCODING', 'too many skipped keys');
  const skipped = new Map<number, SecretBytes>();
  for (const entry of skippedEntries) {
    const f = readProto(entry);
    skipped.set(requiredUint32(f, 1, 'counter'), secret(f, 2, 'seed'));
  }
  return {
    ratchetKey: sized(fields, 1, 'ratchet_key', 32),
    chainKey: { key: secret(fields, 2, 'chain_key'), index: requiredUint32(fields, 3, 'index') },
    skipped,
  };
}

function decodePending(bytes: Uint8Array): PendingPreKey {
  const f = readProto(bytes);
  return {
    preKeyId: optionalUint32(f, 1, 'pre_key_id'),
    signedPreKeyId: requiredUint32(f, 2, 'signed_pre_key_id'),
    kyberPreKeyId: requiredUint32(f, 3, 'kyber_pre_key_id'),
    kyberCiphertext: requiredBytes(f, 4, 'kyber_ciphertext').slice(),
    baseKey: sized(f, 5, 'base_key', 32),
    timestamp: requiredUint64(f, 6, 'timestamp_ms'),
  };
}

function decodeState(bytes: Uint8Array): SessionState {
  const f = readProto(bytes);
  const chains = repeatedBytes(bytes, 13, 'receiver_chains');
  if (chains.length > MAX_RECEIVER_CHAINS) throw new ProtocolError('INVALID_ENCODING', 'too many receiver chains');
  const pending = optionalBytes(f, 14, 'pending_prekey');
  return {
    version: requiredUint32(f, 1, 'version'),
    localIdentityKey: sized(f, 2, 'local_identity', 33),
    remoteIdentityKey: sized(f, 3, 'remote_identity', 33),
    localRegistrationId: requiredUint32(f, 4, 'local_registration_id'),
    remoteRegistrationId: requiredUint32(f, 5, 'remote_registration_id'),
    aliceBaseKey: sized(f, 6, 'alice_base_key', 32),
    rootKey: secret(f, 7, 'root_key'),
    senderRatchet: { publicKey: sized(f, 8, 'sender_ratchet_public', 32), privateKey: secret(f, 9, 'sender_ratchet_private') },
    senderChain: { key: secret(f, 10, 'sender_chain_key'), index: requiredUint32(f, 11, 'sender_chain_index') },
    previousCounter: requiredUint32(f, 12, 'previous_counter'),
    receiverChains: chains.map(decodeChain),
    pendingPreKey: pending === undefined ? undefined : decodePending(pending),
  };
}

/**
 * Reads a record written by {@link serializeSessionRecord}.
 * @throws ProtocolError `INVALID_STATE` for any bytes it cannot fully read.
 */
export function deserializeSessionRecord(bytes: Uint8Array): SessionRecord {
  try {
    if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new ProtocolError('INVALID_ENCODING', 'empty record');
    if (bytes[0] !== SESSION_RECORD_FORMAT) {
      throw new ProtocolError('INVALID_ENCODING', `unknown session record format ${bytes[0]}`);
    }
    const body = bytes.subarray(1);
    const current = optionalBytes(readProto(body), 1, 'current');
    const previous = repeatedBytes(body, 2, 'previous');
    if (previous.length > ARCHIVED_STATES_MAX_LENGTH) throw new ProtocolError('INVALID_ENCODING', 'too many archived states');
    return { current: current === undefined ? undefined : decodeState(current), previous: previous.map(decodeState) };
  } catch (cause) {
    if (isProtocolError(cause)) throw new ProtocolError('INVALID_STATE', `unreadable session record: ${cause.message}`, {}, { cause });
    throw cause;
  }
}
