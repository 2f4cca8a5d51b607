/**
 * JSON schemas for the HTTP API, checked by Fastify before any handler runs,
 * and the base64 helpers that turn checked strings into bytes. Binary values
 * travel as standard, padded base64.
 */
import { ServerError } from '../errors.js';

/** A base64 string of at most `maxBytes` decoded bytes. */
export const base64 = (maxBytes: number) =>
  ({
    type: 'string',
    maxLength: Math.ceil(maxBytes / 3) * 4,
    pattern: '^[A-Za-z0-9+/]*={0,2}$',
  }) as const;

/** Decodes a schema-checked base64 string, requiring an exact length if given. */
export function bytes(value: string, name: string, length?: number): Uint8Array {
  const buffer = Buffer.from(value, 'base64');
  if (buffer.toString('base64') !== value) throw new ServerError('BAD_REQUEST', `${name} is not canonical base64`);
  const decoded = new Uint8Array(buffer);
  if (length !== undefined && decoded.length !== length) throw new ServerError('BAD_REQUEST', `${name} must be ${length} bytes`);
  return decoded;
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** A serialized Curve25519 public key (0x05 ‖ 32 bytes). */
export const CURVE_KEY_BYTES = 33;
/** XEdDSA signatures. */
export const SIGNATURE_BYTES = 64;
/** A type-prefixed Kyber1024 or ML-KEM-1024 public key. */
export const KEM_KEY_BYTES = 1569;

const keyId = { type: 'integer', minimum: 0, maximum: 0xffffff } as const;

export const preKeySchema = {
  type: 'object',
  required: ['keyId', 'publicKey'],
  additionalProperties: false,
  properties: { keyId, publicKey: base64(CURVE_KEY_BYTES) },
} as const;

export const signedPreKeySchema = {
  type: 'object',
  required: ['keyId', 'publicKey', 'signature'],
  additionalProperties: false,
  properties: { keyId, publicKey: base64(CURVE_KEY_BYTES), signature: base64(SIGNATURE_BYTES) },
} as const;

export const kyberPreKeySchema = {
  type: 'object',
  required: ['keyId', 'publicKey', 'signature'],
  additionalProperties: false,
  properties: { keyId, publicKey: base64(KEM_KEY_BYTES), signature: base64(SIGNATURE_BYTES) },
} as const;

/** A signed device list is small: 16 devices of ~45 bytes each, plus the username. */
export const deviceListSchema = {
  type: 'object',
  required: ['list', 'signature'],
  additionalProperties: false,
  properties: { list: base64(2048), signature: base64(SIGNATURE_BYTES) },
} as const;

export const usernameSchema = { type: 'string', minLength: 1, maxLength: 64 } as const;
export const deviceIdSchema = { type: 'integer', minimum: 1, maximum: 1024 } as const;

export interface PreKeyBody {
  keyId: number;
  publicKey: string;
}
export interface SignedPreKeyBody extends PreKeyBody {
  signature: string;
}
export interface DeviceListBody {
  list: string;
  signature: string;
}
