/**
 * The sender chain of a sender key (libsignal `SenderChainKey` and
 * `SenderMessageKey`, rust/protocol/src/sender_keys.rs):
 *
 *   seed(i)         = HMAC-SHA256(CK_i, 0x01)
 *   CK_{i+1}        = HMAC-SHA256(CK_i, 0x02)
 *   iv ‖ cipher_key = HKDF-SHA256(salt = none, ikm = seed(i), info = "WhisperGroup", 48)   (16 + 32 bytes)
 *
 * Chain keys are values: a step returns a new one and leaves the old intact.
 * This module knows nothing of states, records, signatures or the wire.
 */
import { SecretBytes, type CryptoProvider } from '@parley/crypto';

import { ProtocolError } from '../errors.js';

const MESSAGE_KEY_SEED = Uint8Array.of(0x01);
const CHAIN_KEY_SEED = Uint8Array.of(0x02);
const SENDER_MESSAGE_KEYS_INFO = new TextEncoder().encode('WhisperGroup');
const NO_SALT = new Uint8Array(0);
const MAX_ITERATION = 0xffff_ffff;

/** A sender chain key and the iteration it produces the message key for. */
export interface SenderChainKey {
  readonly key: SecretBytes;
  /** The iteration (message counter) of the next message key this chain key yields. */
  readonly iteration: number;
}

/** The seed of one message's keys, as stored for a skipped message. */
export interface SenderMessageKeySeed {
  readonly iteration: number;
  readonly seed: SecretBytes;
}

/** The keys one group message is encrypted with. */
export interface SenderMessageKeys {
  readonly iteration: number;
  readonly cipherKey: SecretBytes;
  readonly iv: Uint8Array;
}

/**
 * The chain key after `chain`.
 * @throws ProtocolError `INVALID_STATE` when the iteration would pass 2^32 − 1 (libsignal refuses it too).
 */
export async function nextSenderChainKey(provider: CryptoProvider, chain: SenderChainKey): Promise<SenderChainKey> {
  if (chain.iteration >= MAX_ITERATION) throw new ProtocolError('INVALID_STATE', 'sender chain is too long');
  return { key: new SecretBytes(await provider.hmacSha256(chain.key, CHAIN_KEY_SEED)), iteration: chain.iteration + 1 };
}

/** The message key seed for `chain.iteration`. */
export async function senderMessageKeySeed(provider: CryptoProvider, chain: SenderChainKey): Promise<SenderMessageKeySeed> {
  return { iteration: chain.iteration, seed: new SecretBytes(await provider.hmacSha256(chain.key, MESSAGE_KEY_SEED)) };
}

/** Expands a seed into the IV and AES-256 key of its message. The seed is left intact. */
export async function deriveSenderMessageKeys(provider: CryptoProvider, seed: SenderMessageKeySeed): Promise<SenderMessageKeys> {
  const okm = await provider.hkdfSha256(seed.seed, NO_SALT, SENDER_MESSAGE_KEYS_INFO, 48);
  const bytes = okm.expose();
  const keys = { iteration: seed.iteration, iv: bytes.slice(0, 16), cipherKey: new SecretBytes(bytes.slice(16, 48)) };
  okm.wipe();
  return keys;
}

/** Wipes message keys once a message is sealed or opened. */
export function wipeSenderMessageKeys(keys: SenderMessageKeys): void {
  keys.cipherKey.wipe();
  keys.iv.fill(0);
}
