/**
 * The sender chain against an independent computation with node:crypto:
 * chain steps are HMAC(CK, 0x02), seeds HMAC(CK, 0x01), and a seed expands by
 * HKDF-SHA256(no salt, "WhisperGroup") into iv[16] ‖ cipher_key[32]; chain keys
 * are values, and the iteration stops at 2^32 − 1 as libsignal's does.
 */
import { createHmac, hkdfSync } from 'node:crypto';

import { SecretBytes } from '@parley/crypto';
import { createNodeProvider } from '@parley/crypto/node';
import { describe, expect, it } from 'vitest';

import { isProtocolError } from '../errors.js';
import { deriveSenderMessageKeys, nextSenderChainKey, senderMessageKeySeed, type SenderChainKey } from './senderChainKey.js';

const provider = createNodeProvider();
const hmac = (key: Uint8Array, byte: number) => new Uint8Array(createHmac('sha256', key).update(Uint8Array.of(byte)).digest());

describe('sender chain key', () => {
  it('steps and derives message keys as libsignal specifies', async () => {
    let expected = Uint8Array.from({ length: 32 }, (_, i) => i);
    let chain: SenderChainKey = { key: new SecretBytes(expected.slice()), iteration: 0 };
    for (let i = 0; i < 5; i++) {
      const seed = await senderMessageKeySeed(provider, chain);
      expect(seed.iteration).toBe(i);
      expect(seed.seed.expose()).toEqual(hmac(expected, 0x01));
      const okm = new Uint8Array(hkdfSync('sha256', seed.seed.expose(), new Uint8Array(32), 'WhisperGroup', 48));
      const keys = await deriveSenderMessageKeys(provider, seed);
      expect(keys.iv).toEqual(okm.subarray(0, 16));
      expect(keys.cipherKey.expose()).toEqual(okm.subarray(16));
      const before = chain.key.expose().slice();
      chain = await nextSenderChainKey(provider, chain);
      expected = hmac(expected, 0x02);
      expect(chain.key.expose()).toEqual(expected);
      expect(chain.iteration).toBe(i + 1);
      expect(before).not.toEqual(chain.key.expose());
    }
  });

  it('leaves the chain key it steps from intact', async () => {
    const chain: SenderChainKey = { key: new SecretBytes(new Uint8Array(32).fill(7)), iteration: 3 };
    await nextSenderChainKey(provider, chain);
    expect(chain.key.expose()).toEqual(new Uint8Array(32).fill(7));
    expect(chain.iteration).toBe(3);
  });

  it('refuses to step past iteration 2^32 − 1', async () => {
    const chain: SenderChainKey = { key: new SecretBytes(new Uint8Array(32)), iteration: 0xffff_ffff };
    const error = await nextSenderChainKey(provider, chain).catch((e: unknown) => e);
    expect(isProtocolError(error, 'INVALID_STATE')).toBe(true);
  });
});
