/**
 * Identity and prekey records in libsignal's storage forms
 * (rust/protocol/src/proto/storage.proto, proto3), so keys can move between a
 * libsignal-based store and Parley's:
 *
 *   IdentityKeyPair  = proto{ public_key=1 (0x05 ‖ 32 B), private_key=2 (32 B) }
 *   PreKeyRecord     = proto{ id=1, public_key=2 (0x05 ‖ 32 B), private_key=3 (32 B) }
 *   SignedPreKeyRecord = proto{ id=1, public_key=2 (0x05 ‖ 32 B), private_key=3 (32 B), signature=4, timestamp=5 (fixed64, ms) }
 *   KyberPreKeyRecord  = the same structure: public_key=2 and private_key=3 are the type-prefixed KEM keys
 *
 * As proto3 prescribes, zero numbers and empty bytes are left out. Whether a
 * Kyber prekey is a last-resort key is not part of libsignal's record; the
 * caller keeps that beside it. Records hold private keys, so serialization
 * returns `SecretBytes`; stored bytes are untrusted and decoding throws only
 * `ProtocolError('INVALID_STATE')`.
 */
import { SecretBytes, serializePublicKey } from '@parley/crypto';

import { isProtocolError, ProtocolError } from '../errors.js';
import { decodePublicKey, type IdentityKeyPair, type KyberPreKeyRecord, type PreKeyRecord, type SignedPreKeyRecord } from '../keys.js';
import { optionalBytes, optionalUint32, ProtoWriter, readProto, requiredFixed64, type ProtoValue } from './protobuf.js';

const KEM_PUBLIC_KEY_LENGTH = 1569;
const KEM_SECRET_KEY_LENGTH = 3169;

type Fields = Map<number, ProtoValue>;

/** proto3: a field at its default value is not written. */
function put(writer: ProtoWriter, field: number, value: number | Uint8Array): void {
  if (typeof value === 'number') {
    if (value !== 0) writer.uint32(field, value);
  } else if (value.length > 0) {
    writer.bytes(field, value);
  }
}

function bytesOf(fields: Fields, field: number, name: string, length?: number): Uint8Array {
  const value = optionalBytes(fields, field, name) ?? new Uint8Array(0);
  if (length !== undefined && value.length !== length) throw new ProtocolError('INVALID_ENCODING', `${name} must be ${length} bytes`);
  return value.slice();
}

const timestampOf = (fields: Fields): number => (fields.has(5) ? requiredFixed64(fields, 5, 'timestamp') : 0);

/** Decodes with `read`, reporting any failure as INVALID_STATE. */
function decoding<T>(what: string, bytes: Uint8Array, read: (fields: Fields) => T): T {
  try {
    if (!(bytes instanceof Uint8Array)) throw new ProtocolError('INVALID_ENCODING', `${what} must be bytes`);
    return read(readProto(bytes));
  } catch (cause) {
    if (isProtocolError(cause)) throw new ProtocolError('INVALID_STATE', `unreadable ${what}: ${cause.message}`, {}, { cause });
    throw cause;
  }
}

export function serializeIdentityKeyPair(identity: IdentityKeyPair): SecretBytes {
  const writer = new ProtoWriter();
  put(writer, 1, identity.publicKey);
  put(writer, 2, identity.privateKey.expose());
  return new SecretBytes(writer.finish());
}

export function deserializeIdentityKeyPair(bytes: Uint8Array): IdentityKeyPair {
  return decoding('identity key pair', bytes, (f) => {
    const publicKey = bytesOf(f, 1, 'public_key', 33);
    decodePublicKey(publicKey, 'public_key');
    return { publicKey, privateKey: new SecretBytes(bytesOf(f, 2, 'private_key', 32)) };
  });
}

export function serializePreKeyRecord(record: PreKeyRecord): SecretBytes {
  const writer = new ProtoWriter();
  put(writer, 1, record.id);
  put(writer, 2, serializePublicKey(record.publicKey));
  put(writer, 3, record.privateKey.expose());
  return new SecretBytes(writer.finish());
}

export function deserializePreKeyRecord(bytes: Uint8Array): PreKeyRecord {
  return decoding('prekey record', bytes, (f) => ({
    id: optionalUint32(f, 1, 'id') ?? 0,
    publicKey: decodePublicKey(bytesOf(f, 2, 'public_key'), 'public_key'),
    privateKey: new SecretBytes(bytesOf(f, 3, 'private_key', 32)),
  }));
}

function serializeSigned(id: number, publicKey: Uint8Array, privateKey: Uint8Array, signature: Uint8Array, timestamp: number): SecretBytes {
  const writer = new ProtoWriter();
  put(writer, 1, id);
  put(writer, 2, publicKey);
  put(writer, 3, privateKey);
  put(writer, 4, signature);
  if (timestamp !== 0) writer.fixed64(5, timestamp);
  return new SecretBytes(writer.finish());
}

export function serializeSignedPreKeyRecord(record: SignedPreKeyRecord): SecretBytes {
  return serializeSigned(record.id, serializePublicKey(record.publicKey), record.privateKey.expose(), record.signature, record.timestamp);
}

export function deserializeSignedPreKeyRecord(bytes: Uint8Array): SignedPreKeyRecord {
  return decoding('signed prekey record', bytes, (f) => ({
    id: optionalUint32(f, 1, 'id') ?? 0,
    timestamp: timestampOf(f),
    publicKey: decodePublicKey(bytesOf(f, 2, 'public_key'), 'public_key'),
    privateKey: new SecretBytes(bytesOf(f, 3, 'private_key', 32)),
    signature: bytesOf(f, 4, 'signature', 64),
  }));
}

export function serializeKyberPreKeyRecord(record: KyberPreKeyRecord): SecretBytes {
  return serializeSigned(record.id, record.publicKey, record.secretKey.expose(), record.signature, record.timestamp);
}

/** @param lastResort whether the caller keeps this key after use (not part of libsignal's record). */
export function deserializeKyberPreKeyRecord(bytes: Uint8Array, options: { lastResort: boolean }): KyberPreKeyRecord {
  return decoding('Kyber prekey record', bytes, (f) => {
    const publicKey = bytesOf(f, 2, 'public_key', KEM_PUBLIC_KEY_LENGTH);
    const secretKey = bytesOf(f, 3, 'private_key', KEM_SECRET_KEY_LENGTH);
    if (publicKey[0] !== secretKey[0]) throw new ProtocolError('INVALID_ENCODING', 'KEM key types differ');
    return {
      id: optionalUint32(f, 1, 'id') ?? 0,
      timestamp: timestampOf(f),
      publicKey,
      secretKey: new SecretBytes(secretKey),
      signature: bytesOf(f, 4, 'signature', 64),
      lastResort: options.lastResort,
    };
  });
}
