/**
 * Key encapsulation with libsignal's key type bytes: every serialized KEM
 * public key, secret key and ciphertext starts with its type byte.
 *
 * - 0x08 Kyber1024 (round 3), which libsignal's Node bindings generate for Kyber prekeys.
 * - 0x0A ML-KEM-1024 (FIPS 203), via `@noble/post-quantum`.
 *
 * No platform has a native Kyber or ML-KEM in Node 20 or browsers today, so
 * both providers share this module. Inputs from the network throw only `CryptoError`.
 */
import { ml_kem1024, type KEMPrepared } from '@noble/post-quantum/ml-kem.js';

import { checkBytes, concatBytes, toHex } from './bytes.js';
import { CryptoError } from './errors.js';
import {
  KYBER1024_CIPHERTEXT_LENGTH,
  KYBER1024_PUBLIC_KEY_LENGTH,
  KYBER1024_SECRET_KEY_LENGTH,
  kyber1024Decapsulate,
  kyber1024Encapsulate,
  kyber1024Keygen,
} from './kyber1024.js';
import type { KemEncapsulation } from './provider.js';
import { SecretBytes } from './secret.js';

/** libsignal's KEM key type bytes. */
export const KemType = {
  Kyber1024: 0x08,
  MlKem1024: 0x0a,
} as const;
export type KemType = (typeof KemType)[keyof typeof KemType];

/** A KEM key pair, both halves serialized with their type byte. */
export interface KemKeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: SecretBytes;
}

interface KemScheme {
  readonly name: string;
  readonly publicKeyLength: number;
  readonly secretKeyLength: number;
  readonly ciphertextLength: number;
  keygen(seed64: Uint8Array): { publicKey: Uint8Array; secretKey: Uint8Array };
  encapsulate(publicKey: KEMPrepared, random32: Uint8Array): { cipherText: Uint8Array; sharedSecret: Uint8Array };
  decapsulate(publicKey: KEMPrepared, cipherText: Uint8Array, secretKey: Uint8Array): Uint8Array;
}

const SCHEMES: Readonly<Record<KemType, KemScheme>> = {
  [KemType.Kyber1024]: {
    name: 'Kyber1024',
    publicKeyLength: KYBER1024_PUBLIC_KEY_LENGTH,
    secretKeyLength: KYBER1024_SECRET_KEY_LENGTH,
    ciphertextLength: KYBER1024_CIPHERTEXT_LENGTH,
    keygen: kyber1024Keygen,
    encapsulate: kyber1024Encapsulate,
    decapsulate: kyber1024Decapsulate,
  },
  [KemType.MlKem1024]: {
    name: 'ML-KEM-1024',
    publicKeyLength: 1568,
    secretKeyLength: 3168,
    ciphertextLength: 1568,
    keygen: (seed) => ml_kem1024.keygen(seed),
    encapsulate: (publicKey, random) => publicKey.encapsulate(random),
    decapsulate: (publicKey, cipherText, secretKey) => publicKey.decapsulate(cipherText, secretKey),
  },
};

/**
 * Both KEMs share ML-KEM-1024's public-key work (checking the key and expanding
 * its matrix Â), which is most of an encapsulation. A prepared key holds only
 * public data, so recently used ones are kept, keyed by their full bytes: a
 * last-resort Kyber prekey is used by every sender that finds no one-time key.
 */
const PREPARED_CACHE_SIZE = 16;
const preparedKeys = new Map<string, KEMPrepared>();

function prepared(publicKey: Uint8Array): KEMPrepared {
  const id = toHex(publicKey);
  let key = preparedKeys.get(id);
  if (key === undefined) {
    key = ml_kem1024.prepare(publicKey);
    if (preparedKeys.size >= PREPARED_CACHE_SIZE) preparedKeys.delete(preparedKeys.keys().next().value as string);
  } else {
    preparedKeys.delete(id);
  }
  preparedKeys.set(id, key);
  return key;
}

/** Where the encapsulation key sits inside an ML-KEM-1024 decapsulation key: dk_pke (1536 B) ‖ ek ‖ H(ek) ‖ z. */
const EK_OFFSET = 1536;
const EK_LENGTH = 1568;

/** The scheme named by a serialized value's type byte, checking the whole length. */
function schemeOf(serialized: Uint8Array, what: string, length: (s: KemScheme) => number): KemScheme {
  if (!(serialized instanceof Uint8Array) || serialized.length === 0) {
    throw new CryptoError('INVALID_KEM_INPUT', `${what} is empty`);
  }
  const scheme = SCHEMES[serialized[0] as KemType] as KemScheme | undefined;
  if (scheme === undefined) {
    throw new CryptoError('INVALID_KEM_INPUT', `unknown KEM type 0x${serialized[0]?.toString(16)} in ${what}`);
  }
  if (serialized.length !== 1 + length(scheme)) {
    throw new CryptoError('INVALID_KEM_INPUT', `${scheme.name} ${what} must be ${1 + length(scheme)} bytes`);
  }
  return scheme;
}

/** Runs a noble call on untrusted input, turning whatever it throws into a typed error. */
function guarded<T>(what: string, run: () => T): T {
  try {
    return run();
  } catch (cause) {
    throw new CryptoError('INVALID_KEM_INPUT', `${what} was rejected`, { cause });
  }
}

/** A key pair of `type` from 64 bytes of fresh randomness, which it wipes. */
export function kemGenerateKeyPair(type: KemType, seed64: Uint8Array): KemKeyPair {
  const scheme = SCHEMES[type] as KemScheme | undefined;
  if (scheme === undefined) throw new RangeError(`type must be a KemType, got ${String(type)}`);
  const { publicKey, secretKey } = scheme.keygen(checkBytes(seed64, 'seed', 64));
  const serializedSecret = concatBytes(Uint8Array.of(type), secretKey);
  secretKey.fill(0);
  seed64.fill(0);
  return { publicKey: concatBytes(Uint8Array.of(type), publicKey), secretKey: new SecretBytes(serializedSecret) };
}

/** Encapsulates to a serialized public key with 32 bytes of fresh randomness, which it wipes. */
export function kemEncapsulate(publicKey: Uint8Array, random32: Uint8Array): KemEncapsulation {
  const scheme = schemeOf(publicKey, 'public key', (s) => s.publicKeyLength);
  const type = publicKey[0] as KemType;
  const { cipherText, sharedSecret } = guarded('public key', () =>
    scheme.encapsulate(prepared(publicKey.subarray(1)), random32),
  );
  random32.fill(0); // for ML-KEM it is the shared secret's preimage
  return { ciphertext: concatBytes(Uint8Array.of(type), cipherText), sharedSecret: new SecretBytes(sharedSecret) };
}

/** Decapsulates a serialized ciphertext with a serialized secret key of the same type. */
export function kemDecapsulate(secretKey: Uint8Array, ciphertext: Uint8Array): SecretBytes {
  const scheme = schemeOf(secretKey, 'secret key', (s) => s.secretKeyLength);
  const ctScheme = schemeOf(ciphertext, 'ciphertext', (s) => s.ciphertextLength);
  if (scheme !== ctScheme) {
    throw new CryptoError('INVALID_KEM_INPUT', `a ${ctScheme.name} ciphertext cannot open with a ${scheme.name} key`);
  }
  const raw = secretKey.subarray(1);
  return new SecretBytes(
    guarded('secret key', () => scheme.decapsulate(prepared(raw.subarray(EK_OFFSET, EK_OFFSET + EK_LENGTH)), ciphertext.subarray(1), raw)),
  );
}
