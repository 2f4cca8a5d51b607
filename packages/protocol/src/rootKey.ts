/**
 * The root chain (KDF_RK of the Double Ratchet specification, §5.2; libsignal `RootKey::create_chain`):
 *
 *   RK' ‖ CK = HKDF-SHA256(salt = RK, ikm = DH(our ratchet private, their ratchet public), info = "WhisperRatchet", 64)
 */
import { SecretBytes, type CryptoProvider } from '@parley/crypto';

import type { ChainKey } from './chainKey.js';
import { agree } from './dh.js';

const RATCHET_INFO = new TextEncoder().encode('WhisperRatchet');

export interface RootStep {
  readonly rootKey: SecretBytes;
  readonly chainKey: ChainKey;
}

/** One step of the root chain with a fresh DH output. */
export async function createChain(
  provider: CryptoProvider,
  rootKey: SecretBytes,
  theirRatchetKey: Uint8Array,
  ourRatchetPrivateKey: SecretBytes,
): Promise<RootStep> {
  const shared = await agree(provider, ourRatchetPrivateKey, theirRatchetKey, 'ratchet key');
  const okm = await provider.hkdfSha256(shared, rootKey.expose(), RATCHET_INFO, 64);
  shared.wipe();
  return splitRootStep(okm);
}

/** RK ‖ CK from the first 64 bytes of a KDF output, which is wiped (any further bytes are ignored). */
export function splitRootStep(okm: SecretBytes): RootStep {
  const bytes = okm.expose();
  const step = {
    rootKey: new SecretBytes(bytes.slice(0, 32)),
    chainKey: { key: new SecretBytes(bytes.slice(32, 64)), index: 0 },
  };
  okm.wipe();
  return step;
}
