/**
 * XEdDSA over Curve25519 ("The XEdDSA and VXEdDSA Signature Schemes", Signal, 2016),
 * in the form libsignal uses: the Edwards public key's sign bit travels in the
 * top bit of the signature's last byte instead of the private key being negated.
 *
 * Group arithmetic comes from `@noble/curves`; hashing and verification come
 * from the provider, so verification runs on native Ed25519 where there is one.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';

import { checkBytes, concatBytes, toHex, wipe } from './bytes.js';
import { SIGNATURE_LENGTH, X25519_KEY_LENGTH } from './curve25519.js';
import type { CryptoProvider } from './provider.js';
import { readBytes, type BytesLike } from './secret.js';

const Point = ed25519.Point;
const Fp = Point.Fp;
const Fn = Point.Fn;
const P = Fp.ORDER;

/** hash_1 prefix of XEdDSA §2.5 (hash_i): the 32-byte little-endian encoding of 2^256 − 2. */
const HASH1_PREFIX = new Uint8Array(32).fill(0xff);
HASH1_PREFIX[0] = 0xfe;

/**
 * Signs `message` with a Curve25519 private key (XEdDSA §3.3, `xeddsa_sign`).
 * The 64 bytes of nonce randomness `Z` come from the provider.
 *
 * `publicKey`, the key pair's 32-byte Montgomery public key, is an optional
 * speed-up for a key that signs often (a sender key signs every group
 * message): the Edwards form of the public key, which costs a base-point
 * multiplication to compute, is then kept for it. It is public (every
 * signature carries its sign bit). A `publicKey` that is not the private
 * key's yields a signature that does not verify, nothing worse, as long as
 * the provider's randomness is sound: the nonce takes 64 fresh random bytes,
 * and only a repeated nonce could let a mismatched signature reveal the key.
 */
export async function xeddsaSign(
  provider: CryptoProvider,
  privateKey: BytesLike,
  message: Uint8Array,
  publicKey?: Uint8Array,
): Promise<Uint8Array> {
  const k = readBytes(privateKey, 'privateKey', X25519_KEY_LENGTH);
  checkBytes(message, 'message');
  // calculate_key_pair(k): the scalar is the (clamped) Montgomery secret itself.
  const a = Fn.create(bytesToNumberLE(k));
  const A = edwardsPublicKey(a, publicKey);
  const signBit = (A[31] as number) & 0x80;

  const Z = provider.randomBytes(64);
  const nonceInput = concatBytes(HASH1_PREFIX, k, message, Z);
  const rHash = await provider.sha512(nonceInput);
  const r = Fn.create(bytesToNumberLE(rHash));
  const R = Point.BASE.multiply(r).toBytes();
  const h = Fn.create(bytesToNumberLE(await provider.sha512(concatBytes(R, A, message))));
  const s = Fn.add(r, Fn.mul(h, a));
  wipe(Z, nonceInput, rHash);

  const signature = concatBytes(R, numberToBytesLE(s, 32));
  signature[63] = ((signature[63] as number) & 0x7f) | signBit;
  return signature;
}

/**
 * Verifies an XEdDSA signature (XEdDSA §3.3, `xeddsa_verify`) against a raw
 * 32-byte Curve25519 public key. Returns false, never throws, for any
 * malformed key or signature.
 */
export async function xeddsaVerify(
  provider: CryptoProvider,
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  checkBytes(publicKey, 'publicKey');
  checkBytes(message, 'message');
  checkBytes(signature, 'signature');
  if (publicKey.length !== X25519_KEY_LENGTH || signature.length !== SIGNATURE_LENGTH) return false;
  const edwardsKey = montgomeryToEdwards(publicKey, (signature[63] as number) >> 7);
  if (edwardsKey === undefined) return false;
  const ed25519Signature = signature.slice();
  ed25519Signature[63] = (ed25519Signature[63] as number) & 0x7f;
  return provider.ed25519Verify(edwardsKey, message, ed25519Signature);
}

/** Edwards public keys (with their sign bit) by Montgomery public key, for keys that sign often. */
const SIGNER_CACHE_SIZE = 256;
const signers = new Map<string, Uint8Array>();

/** A = aB, encoded; taken from the cache when `publicKey` (u) was seen, and cached when it is the key of `a`. */
function edwardsPublicKey(a: bigint, publicKey: Uint8Array | undefined): Uint8Array {
  const id = publicKey?.length === X25519_KEY_LENGTH ? toHex(publicKey) : undefined;
  const known = id === undefined ? undefined : signers.get(id);
  if (known !== undefined) return known;
  const A = Point.BASE.multiply(a).toBytes();
  if (id === undefined) return A;
  // Cache only what belongs together: A's y must be the one u gives (the sign bit is A's own).
  const y = uToY(publicKey!);
  if (y === undefined || !y.every((byte, i) => byte === (i === 31 ? (A[31] as number) & 0x7f : A[i]))) return A;
  if (signers.size >= SIGNER_CACHE_SIZE) signers.delete(signers.keys().next().value as string);
  signers.set(id, A);
  return A;
}

/**
 * Recent Montgomery-to-Edwards conversions, by public key (public data only):
 * one identity key verifies every prekey it signed, and the field inversion is
 * most of a verification's JavaScript cost.
 */
const EDWARDS_CACHE_SIZE = 64;
const edwardsY = new Map<string, Uint8Array | undefined>();

/** y = (u − 1) / (u + 1) (RFC 7748 §4.1), little-endian; undefined for u = −1. The top bit of `u` is ignored, as in XEdDSA's `u_to_y`. */
function uToY(u: Uint8Array): Uint8Array | undefined {
  const id = toHex(u);
  if (edwardsY.has(id)) return edwardsY.get(id);
  const uValue = Fp.create(bytesToNumberLE(u) & ((1n << 255n) - 1n));
  const y = uValue === P - 1n ? undefined : numberToBytesLE(Fp.mul(Fp.sub(uValue, 1n), Fp.inv(Fp.add(uValue, 1n))), 32);
  if (edwardsY.size >= EDWARDS_CACHE_SIZE) edwardsY.delete(edwardsY.keys().next().value as string);
  edwardsY.set(id, y);
  return y;
}

/** The compressed Edwards point birationally equivalent to Montgomery `u`, with the given sign bit. */
function montgomeryToEdwards(u: Uint8Array, signBit: number): Uint8Array | undefined {
  const y = uToY(u);
  if (y === undefined) return undefined;
  const encoded = y.slice();
  encoded[31] = (encoded[31] as number) | (signBit << 7);
  return encoded;
}
