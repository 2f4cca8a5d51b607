/**
 * Symmetric-key ratchet chains (Double Ratchet §2.2, libsignal `ChainKey`):
 *
 *   message_key_seed = HMAC-SHA256(CK, 0x01)
 *   CK'              = HMAC-SHA256(CK, 0x02)
 *
 * and the message keys a seed expands to (libsignal `MessageKeys`):
 *
 *   cipher_key ‖ mac_key ‖ iv = HKDF-SHA256(salt = pqr_key or none, ikm = seed, info = "WhisperMessageKeys", 80)
 *
 * Chain keys are values: a step returns a new one and leaves the old intact.
 */
import { SecretBytes, type CryptoProvider } from '@parley/crypto';

const MESSAGE_KEY_SEED = Uint8Array.of(0x01);
const CHAIN_KEY_SEED = Uint8Array.of(0x02);
const MESSAGE_KEYS_INFO = new TextEncoder().encode('WhisperMessageKeys');
const NO_SALT = new Uint8Array(0);

export interface ChainKey {
  readonly key: SecretBytes;
  /** The counter of the next message this chain key will produce keys for. */
  readonly index: number;
}

export interface MessageKeys {
  readonly cipherKey: SecretBytes;
  readonly macKey: SecretBytes;
  readonly iv: Uint8Array;
}

/** The chain key after `chain`. */
export async function nextChainKey(provider: CryptoProvider, chain: ChainKey): Promise<ChainKey> {
  return { key: new SecretBytes(await provider.hmacSha256(chain.key, CHAIN_KEY_SEED)), index: chain.index + 1 };
}

/** The seed of the message keys for `chain.index`. */
export async function messageKeySeed(provider: CryptoProvider, chain: ChainKey): Promise<SecretBytes> {
  return new SecretBytes(await provider.hmacSha256(chain.key, MESSAGE_KEY_SEED));
}

/** Expands a message key seed. Parley sends no SPQR data yet, so no PQ salt is mixed in. */
export async function deriveMessageKeys(provider: CryptoProvider, seed: SecretBytes): Promise<MessageKeys> {
  const okm = await provider.hkdfSha256(seed, NO_SALT, MESSAGE_KEYS_INFO, 80);
  const bytes = okm.expose();
  const keys = {
    cipherKey: new SecretBytes(bytes.slice(0, 32)),
    macKey: new SecretBytes(bytes.slice(32, 64)),
    iv: bytes.slice(64, 80),
  };
  okm.wipe();
  return keys;
}

/** Wipes message keys once a message is sealed or opened. */
export function wipeMessageKeys(keys: MessageKeys): void {
  keys.cipherKey.wipe();
  keys.macKey.wipe();
  keys.iv.fill(0);
}
