/**
 * X25519 with a key from the network, turning the crypto layer's refusal of a
 * low-order point into the protocol's typed error.
 */
import { isCryptoError, type CryptoProvider, type SecretBytes } from '@parley/crypto';

import { ProtocolError } from './errors.js';

/** DH(ours, theirs). @throws ProtocolError `INVALID_KEY` when `theirs` has low order. */
export async function agree(
  provider: CryptoProvider,
  ours: SecretBytes,
  theirs: Uint8Array,
  what: string,
): Promise<SecretBytes> {
  try {
    return await provider.x25519Agree(ours, theirs);
  } catch (cause) {
    if (isCryptoError(cause, 'NON_CONTRIBUTORY_DH')) {
      throw new ProtocolError('INVALID_KEY', `the peer's ${what} has low order`, {}, { cause });
    }
    throw cause;
  }
}
