/**
 * Argument checks shared by the providers, so that both reject the same
 * inputs with the same errors.
 */
import { checkBytes, checkInteger } from './bytes.js';
import { X25519_KEY_LENGTH } from './curve25519.js';
import { readBytes, type BytesLike } from './secret.js';

export const AES_256_KEY_LENGTH = 32;
export const AES_BLOCK_LENGTH = 16;
export const GCM_NONCE_LENGTH = 12;
export const GCM_TAG_LENGTH = 16;
export const HKDF_SHA256_MAX_LENGTH = 255 * 32;
export const ED25519_SEED_LENGTH = 32;

export const aesKey = (key: BytesLike): Uint8Array => readBytes(key, 'key', AES_256_KEY_LENGTH);
export const cbcIv = (iv: Uint8Array): Uint8Array => checkBytes(iv, 'iv', AES_BLOCK_LENGTH);
export const gcmNonce = (nonce: Uint8Array): Uint8Array => checkBytes(nonce, 'nonce', GCM_NONCE_LENGTH);
export const x25519Private = (key: BytesLike): Uint8Array => readBytes(key, 'privateKey', X25519_KEY_LENGTH);
export const x25519Public = (key: Uint8Array): Uint8Array => checkBytes(key, 'publicKey', X25519_KEY_LENGTH);
export const ed25519Seed = (seed: BytesLike): Uint8Array => readBytes(seed, 'seed', ED25519_SEED_LENGTH);
export const hkdfLength = (length: number): number => checkInteger(length, 'length', 0, HKDF_SHA256_MAX_LENGTH);
export const byteCount = (length: number): number => checkInteger(length, 'length', 0, Number.MAX_SAFE_INTEGER);

/** The X25519 base point, u = 9 (RFC 7748 §4.1). */
export const X25519_BASE_POINT = Uint8Array.of(9, ...new Uint8Array(31));
