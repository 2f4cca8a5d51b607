/**
 * One sender key state (libsignal `SenderKeyState`): a chain id, the sender
 * chain, the signing key that authenticates the chain's messages, and the
 * keys of messages skipped over, oldest first.
 *
 * States are values: a transition returns a new state and never mutates its
 * input, so a caller keeps the old one until the message has authenticated
 * and decrypted. This module knows nothing of stores, records or the wire.
 */
import type { CryptoProvider, SecretBytes } from '@parley/crypto';

import { ProtocolError } from '../errors.js';
import { MAX_FORWARD_JUMPS, MAX_SENDER_MESSAGE_KEYS } from '../limits.js';
import { nextSenderChainKey, senderMessageKeySeed, type SenderChainKey, type SenderMessageKeySeed } from './senderChainKey.js';

/** The only sender key message version libsignal and Parley speak. */
export const SENDER_KEY_MESSAGE_VERSION = 3;

/** The key a sender signs its group messages with (XEdDSA over Curve25519). */
export interface SenderSigningKey {
  /** Raw 32-byte Curve25519 public key. */
  readonly publicKey: Uint8Array;
  /** The private key: present in the sender's own state only. */
  readonly privateKey: SecretBytes | undefined;
}

export interface SenderKeyState {
  readonly messageVersion: number;
  /** 31-bit chain id chosen by the sender (libsignal-java's range). */
  readonly chainId: number;
  readonly chainKey: SenderChainKey;
  readonly signingKey: SenderSigningKey;
  /** Seeds of skipped messages, oldest first, at most MAX_SENDER_MESSAGE_KEYS. */
  readonly skippedKeys: readonly SenderMessageKeySeed[];
}

/**
 * The sender's step: the seed for the chain's current iteration, and the
 * state with the chain advanced past it.
 */
export async function advanceSenderKeyState(
  provider: CryptoProvider,
  state: SenderKeyState,
): Promise<{ state: SenderKeyState; seed: SenderMessageKeySeed }> {
  const seed = await senderMessageKeySeed(provider, state.chainKey);
  return { state: { ...state, chainKey: await nextSenderChainKey(provider, state.chainKey) }, seed };
}

/**
 * The receiver's step (libsignal `get_sender_key`): the seed for `iteration`
 * and the state after using it. A past iteration takes its skipped seed out;
 * a future one derives and keeps the seeds it skips (oldest dropped beyond
 * MAX_SENDER_MESSAGE_KEYS).
 * @throws ProtocolError `DUPLICATE_MESSAGE` for a past iteration whose seed is gone (used or dropped);
 *   `TOO_FAR_IN_FUTURE` when `iteration` is more than MAX_FORWARD_JUMPS ahead (nothing is derived).
 */
export async function senderKeyStateForIteration(
  provider: CryptoProvider,
  state: SenderKeyState,
  iteration: number,
): Promise<{ state: SenderKeyState; seed: SenderMessageKeySeed }> {
  const current = state.chainKey.iteration;
  if (iteration < current) {
    const index = state.skippedKeys.findIndex((k) => k.iteration === iteration);
    const seed = state.skippedKeys[index];
    if (seed === undefined) {
      throw new ProtocolError('DUPLICATE_MESSAGE', `sender key iteration ${iteration} was already used`, { chainIndex: current, counter: iteration });
    }
    return { state: { ...state, skippedKeys: state.skippedKeys.filter((_, i) => i !== index) }, seed };
  }
  if (iteration - current > MAX_FORWARD_JUMPS) {
    throw new ProtocolError('TOO_FAR_IN_FUTURE', `sender key iteration ${iteration} is more than ${MAX_FORWARD_JUMPS} ahead of ${current}`, {
      chainIndex: current,
      counter: iteration,
    });
  }
  const skipped = [...state.skippedKeys];
  let chain = state.chainKey;
  while (chain.iteration < iteration) {
    skipped.push(await senderMessageKeySeed(provider, chain));
    chain = await nextSenderChainKey(provider, chain);
  }
  const seed = await senderMessageKeySeed(provider, chain);
  const next = await nextSenderChainKey(provider, chain);
  return {
    state: { ...state, chainKey: next, skippedKeys: skipped.slice(Math.max(0, skipped.length - MAX_SENDER_MESSAGE_KEYS)) },
    seed,
  };
}
