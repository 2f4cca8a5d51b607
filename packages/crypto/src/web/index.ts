/**
 * The browser provider: WebCrypto wherever it serves, `@noble/*` for the rest.
 *
 * - SHA-2, HMAC, HKDF, AES-CBC and AES-GCM run on `crypto.subtle`. The few inputs
 *   WebCrypto refuses but the RFCs allow (an empty HMAC or HKDF key, a zero-length
 *   HKDF output) go to noble, so both providers accept exactly the same inputs.
 * - X25519 and Ed25519 run on WebCrypto where the browser has them (Chrome 133+,
 *   Firefox 130+, Safari 17+) and on `@noble/curves` elsewhere; `curves` forces either.
 * - Kyber1024 and ML-KEM-1024 always come from `@noble/post-quantum`.
 *
 * It imports nothing from Node: it runs wherever `globalThis.crypto` exists.
 */
import { ed25519 as nobleEd25519, x25519 as nobleX25519 } from '@noble/curves/ed25519.js';
import { hkdf as nobleHkdf } from '@noble/hashes/hkdf.js';
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';
import { sha256 as nobleSha256, sha512 as nobleSha512 } from '@noble/hashes/sha2.js';

import { checkBytes, concatBytes, isAllZero, toHex } from '../bytes.js';
import {
  aesKey,
  byteCount,
  cbcIv,
  ed25519Seed,
  gcmNonce,
  GCM_TAG_LENGTH,
  hkdfLength,
  X25519_BASE_POINT,
  x25519Private,
  x25519Public,
} from '../checks.js';
import { clampScalar, SIGNATURE_LENGTH } from '../curve25519.js';
import { CryptoError } from '../errors.js';
import { kemDecapsulate, kemEncapsulate, kemGenerateKeyPair, type KemType } from '../kem.js';
import type { CryptoProvider, X25519KeyPair } from '../provider.js';
import { readBytes, SecretBytes, type BytesLike } from '../secret.js';

/** PKCS#8 prefixes that wrap a raw 32-byte private key (RFC 8410); WebCrypto imports no raw private keys. */
const X25519_PKCS8 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);
const ED25519_PKCS8 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);

/** Public keys whose CryptoKeys are kept, most recent first out last. */
const PUBLIC_KEY_CACHE_SIZE = 64;

/** getRandomValues fills at most 65,536 bytes a call. */
const RANDOM_CHUNK = 65_536;

export interface WebProviderOptions {
  /** Replaces the CSPRNG, for deterministic tests only. */
  readonly randomBytes?: (length: number) => Uint8Array;
  /** Where X25519 and Ed25519 run: `auto` (WebCrypto when present), `webcrypto` or `noble`. */
  readonly curves?: 'auto' | 'webcrypto' | 'noble';
  /** The WebCrypto implementation; `globalThis.crypto` by default. */
  readonly crypto?: Crypto;
}

/** WebCrypto's types want ArrayBuffer-backed views; ours always are. */
const buf = (bytes: Uint8Array): Uint8Array<ArrayBuffer> => bytes as Uint8Array<ArrayBuffer>;

function decryptionFailed(cause: unknown): CryptoError {
  return new CryptoError('DECRYPTION_FAILED', 'ciphertext did not authenticate', { cause });
}

/** Probes once whether `subtle` does X25519 and Ed25519. */
async function hasWebCryptoCurves(subtle: SubtleCrypto): Promise<boolean> {
  try {
    const point = await subtle.importKey('raw', buf(X25519_BASE_POINT), { name: 'X25519' }, false, []);
    const seed = concatBytes(ED25519_PKCS8, new Uint8Array(32).fill(1));
    await subtle.importKey('pkcs8', buf(seed), { name: 'Ed25519' }, false, ['sign']);
    return point.type === 'public';
  } catch {
    return false;
  }
}

/** Creates the WebCrypto provider. */
export function createWebProvider(options: WebProviderOptions = {}): CryptoProvider {
  const webcrypto = options.crypto ?? globalThis.crypto;
  // Outside a secure context browsers expose `crypto` without `subtle`.
  const subtle = (webcrypto as Partial<Crypto> | undefined)?.subtle;
  if (subtle === undefined) {
    throw new CryptoError('UNSUPPORTED', 'WebCrypto (crypto.subtle) is not available: Parley needs a secure context');
  }
  const randomBytes =
    options.randomBytes ??
    ((length: number) => {
      const out = new Uint8Array(byteCount(length));
      for (let i = 0; i < out.length; i += RANDOM_CHUNK) webcrypto.getRandomValues(out.subarray(i, i + RANDOM_CHUNK));
      return out;
    });

  const curveChoice = options.curves ?? 'auto';
  let nativeCurves: Promise<boolean> | undefined;
  const useWebCryptoCurves = (): Promise<boolean> => {
    if (curveChoice === 'noble') return Promise.resolve(false);
    nativeCurves ??= hasWebCryptoCurves(subtle).then((ok) => {
      if (!ok && curveChoice === 'webcrypto') {
        throw new CryptoError('UNSUPPORTED', 'this WebCrypto has no X25519 or Ed25519');
      }
      return ok;
    });
    return nativeCurves;
  };

  const hmac = async (hash: 'SHA-256' | 'SHA-512', key: BytesLike, data: Uint8Array): Promise<Uint8Array> => {
    const k = readBytes(key, 'key');
    checkBytes(data, 'data');
    if (k.length === 0) return nobleHmac(hash === 'SHA-256' ? nobleSha256 : nobleSha512, k, data);
    const handle = await subtle.importKey('raw', buf(k), { name: 'HMAC', hash }, false, ['sign']);
    return new Uint8Array(await subtle.sign('HMAC', handle, buf(data)));
  };

  // A private key given as SecretBytes is imported once and its CryptoKey kept for the secret's lifetime.
  const imported = { X25519: new WeakMap<SecretBytes, Promise<CryptoKey>>(), Ed25519: new WeakMap<SecretBytes, Promise<CryptoKey>>() };
  const importPrivate = (name: 'X25519' | 'Ed25519', key: BytesLike, raw: Uint8Array): Promise<CryptoKey> => {
    const cached = key instanceof SecretBytes ? imported[name].get(key) : undefined;
    if (cached !== undefined) return cached;
    const der = concatBytes(name === 'X25519' ? X25519_PKCS8 : ED25519_PKCS8, raw);
    const usage: KeyUsage = name === 'X25519' ? 'deriveBits' : 'sign';
    const importing = subtle.importKey('pkcs8', buf(der), { name }, false, [usage]).finally(() => der.fill(0));
    if (key instanceof SecretBytes) {
      imported[name].set(key, importing);
      importing.catch(() => imported[name].delete(key));
    }
    return importing;
  };

  // Recently used public keys, by content (public data only): a ratchet key takes part in two agreements in a row.
  const publicKeys = new Map<string, Promise<CryptoKey>>();
  const importPublic = (name: 'X25519' | 'Ed25519', raw: Uint8Array, usages: KeyUsage[]): Promise<CryptoKey> => {
    const id = `${name}:${toHex(raw)}`;
    let key = publicKeys.get(id);
    if (key === undefined) {
      key = subtle.importKey('raw', buf(raw), { name }, false, usages);
      key.catch(() => publicKeys.delete(id));
      if (publicKeys.size >= PUBLIC_KEY_CACHE_SIZE) publicKeys.delete(publicKeys.keys().next().value as string);
    } else {
      publicKeys.delete(id);
    }
    publicKeys.set(id, key);
    return key;
  };

  const x25519 = async (key: BytesLike, privateKey: Uint8Array, publicKey: Uint8Array): Promise<Uint8Array> => {
    if (!(await useWebCryptoCurves())) return nobleX25519.getSharedSecret(privateKey, publicKey);
    const ours = await importPrivate('X25519', key, privateKey);
    const theirs = await importPublic('X25519', publicKey, []);
    return new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: theirs }, ours, 256));
  };

  return {
    name: 'web',
    randomBytes,

    sha256: async (data) => new Uint8Array(await subtle.digest('SHA-256', buf(checkBytes(data, 'data')))),
    sha512: async (data) => new Uint8Array(await subtle.digest('SHA-512', buf(checkBytes(data, 'data')))),
    hmacSha256: (key, data) => hmac('SHA-256', key, data),
    hmacSha512: (key, data) => hmac('SHA-512', key, data),

    async hkdfSha256(ikm, salt, info, length) {
      const input = readBytes(ikm, 'ikm');
      checkBytes(salt, 'salt');
      checkBytes(info, 'info');
      hkdfLength(length);
      if (input.length === 0 || length === 0) {
        return new SecretBytes(nobleHkdf(nobleSha256, input, salt, info, length));
      }
      const key = await subtle.importKey('raw', buf(input), 'HKDF', false, ['deriveBits']);
      const bits = await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: buf(salt), info: buf(info) }, key, length * 8);
      return new SecretBytes(new Uint8Array(bits));
    },

    async aes256CbcEncrypt(key, iv, plaintext) {
      const handle = await subtle.importKey('raw', buf(aesKey(key)), 'AES-CBC', false, ['encrypt']);
      const params = { name: 'AES-CBC', iv: buf(cbcIv(iv)) };
      return new Uint8Array(await subtle.encrypt(params, handle, buf(checkBytes(plaintext, 'plaintext'))));
    },

    async aes256CbcDecrypt(key, iv, ciphertext) {
      const handle = await subtle.importKey('raw', buf(aesKey(key)), 'AES-CBC', false, ['decrypt']);
      const params = { name: 'AES-CBC', iv: buf(cbcIv(iv)) };
      checkBytes(ciphertext, 'ciphertext');
      try {
        return new Uint8Array(await subtle.decrypt(params, handle, buf(ciphertext)));
      } catch (cause) {
        throw decryptionFailed(cause);
      }
    },

    async aes256GcmEncrypt(key, nonce, plaintext, aad) {
      const handle = await subtle.importKey('raw', buf(aesKey(key)), 'AES-GCM', false, ['encrypt']);
      const params: AesGcmParams = { name: 'AES-GCM', iv: buf(gcmNonce(nonce)), tagLength: GCM_TAG_LENGTH * 8 };
      if (aad !== undefined) params.additionalData = buf(checkBytes(aad, 'aad'));
      return new Uint8Array(await subtle.encrypt(params, handle, buf(checkBytes(plaintext, 'plaintext'))));
    },

    async aes256GcmDecrypt(key, nonce, sealed, aad) {
      const handle = await subtle.importKey('raw', buf(aesKey(key)), 'AES-GCM', false, ['decrypt']);
      const params: AesGcmParams = { name: 'AES-GCM', iv: buf(gcmNonce(nonce)), tagLength: GCM_TAG_LENGTH * 8 };
      if (aad !== undefined) params.additionalData = buf(checkBytes(aad, 'aad'));
      checkBytes(sealed, 'sealed');
      try {
        return new Uint8Array(await subtle.decrypt(params, handle, buf(sealed)));
      } catch (cause) {
        throw decryptionFailed(cause);
      }
    },

    async x25519GenerateKeyPair(): Promise<X25519KeyPair> {
      const privateKey = new SecretBytes(clampScalar(randomBytes(32)));
      return { privateKey, publicKey: await x25519(privateKey, privateKey.expose(), X25519_BASE_POINT) };
    },

    x25519PublicKey: (privateKey) => x25519(privateKey, x25519Private(privateKey), X25519_BASE_POINT),

    async x25519Agree(privateKey, publicKey) {
      const [ours, theirs] = [x25519Private(privateKey), x25519Public(publicKey)];
      let shared: Uint8Array;
      try {
        shared = await x25519(privateKey, ours, theirs);
      } catch (cause) {
        if (cause instanceof CryptoError) throw cause; // UNSUPPORTED and the like: not the peer's fault
        // WebCrypto and noble both refuse an all-zero result (RFC 7748 §6.1).
        throw new CryptoError('NON_CONTRIBUTORY_DH', 'X25519 produced no shared secret: low-order public key', { cause });
      }
      if (isAllZero(shared)) {
        throw new CryptoError('NON_CONTRIBUTORY_DH', 'X25519 produced an all-zero shared secret: low-order public key');
      }
      return new SecretBytes(shared);
    },

    // WebCrypto derives no public key from a seed without exporting the private key as JWK text.
    ed25519PublicKey: async (seed) => nobleEd25519.getPublicKey(ed25519Seed(seed)),

    async ed25519Sign(seed, message) {
      const raw = ed25519Seed(seed);
      checkBytes(message, 'message');
      if (!(await useWebCryptoCurves())) return nobleEd25519.sign(message, raw);
      const key = await importPrivate('Ed25519', seed, raw);
      return new Uint8Array(await subtle.sign('Ed25519', key, buf(message)));
    },

    async ed25519Verify(publicKey, message, signature) {
      checkBytes(publicKey, 'publicKey');
      checkBytes(message, 'message');
      checkBytes(signature, 'signature');
      if (publicKey.length !== 32 || signature.length !== SIGNATURE_LENGTH) return false;
      try {
        if (!(await useWebCryptoCurves())) return nobleEd25519.verify(signature, message, publicKey, { zip215: false });
        const key = await importPublic('Ed25519', publicKey, ['verify']);
        return await subtle.verify('Ed25519', key, buf(signature), buf(message));
      } catch {
        return false; // an undecodable point
      }
    },

    kemGenerateKeyPair: async (type: KemType) => kemGenerateKeyPair(type, randomBytes(64)),
    kemEncapsulate: async (publicKey) => kemEncapsulate(checkBytes(publicKey, 'publicKey'), randomBytes(32)),
    kemDecapsulate: async (secretKey, ciphertext) =>
      kemDecapsulate(readBytes(secretKey, 'secretKey'), checkBytes(ciphertext, 'ciphertext')),
  };
}
