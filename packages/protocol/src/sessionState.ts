/**
 * One Double Ratchet session between two devices, as an immutable value.
 *
 * Transitions return a new state and share unchanged parts with the old one;
 * nothing here mutates its input. Callers replace their stored state only
 * after a message authenticates, so a failed decrypt changes nothing.
 *
 * This module knows the shape of a session and its limits. It does not know
 * how messages are encoded, how keys are derived, or where sessions are stored.
 */
import { constantTimeEqual, type SecretBytes } from '@parley/crypto';

import type { ChainKey } from './chainKey.js';
import { MAX_MESSAGE_KEYS, MAX_RECEIVER_CHAINS } from './limits.js';

/** A Curve25519 key pair used as a ratchet key; the public key is raw (32 bytes). */
export interface RatchetKeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: SecretBytes;
}

/** A chain for messages from one of the peer's ratchet keys. */
export interface ReceiverChain {
  /** The peer's ratchet public key, raw. */
  readonly ratchetKey: Uint8Array;
  readonly chainKey: ChainKey;
  /**
   * Message key seeds for counters skipped over, oldest first, at most
   * MAX_MESSAGE_KEYS. Each can still open exactly one late message.
   */
  readonly skipped: ReadonlyMap<number, SecretBytes>;
}

/** What Alice repeats in every message until Bob first answers: how to build the session. */
export interface PendingPreKey {
  readonly preKeyId: number | undefined;
  readonly signedPreKeyId: number;
  readonly kyberPreKeyId: number;
  readonly kyberCiphertext: Uint8Array;
  /** Alice's base key, raw. */
  readonly baseKey: Uint8Array;
  /** When the session was built (ms since the epoch, from the caller's clock). */
  readonly timestamp: number;
}

export interface SessionState {
  readonly version: number;
  /** Serialized (33-byte) identity keys. */
  readonly localIdentityKey: Uint8Array;
  readonly remoteIdentityKey: Uint8Array;
  readonly localRegistrationId: number;
  readonly remoteRegistrationId: number;
  /** Alice's base key (raw), which names the session on both sides. */
  readonly aliceBaseKey: Uint8Array;
  readonly rootKey: SecretBytes;
  readonly senderRatchet: RatchetKeyPair;
  readonly senderChain: ChainKey;
  /** The number of messages sent on the previous sending chain, minus one (libsignal's PN). */
  readonly previousCounter: number;
  /** Newest last, at most MAX_RECEIVER_CHAINS. */
  readonly receiverChains: readonly ReceiverChain[];
  readonly pendingPreKey: PendingPreKey | undefined;
}

/** The receiving chain for `ratchetKey`, if this session has one. */
export function findReceiverChain(state: SessionState, ratchetKey: Uint8Array): ReceiverChain | undefined {
  return state.receiverChains.find((chain) => constantTimeEqual(chain.ratchetKey, ratchetKey));
}

/** `state` with `chain` replacing the chain of the same ratchet key, or appended (dropping the oldest beyond the limit). */
export function withReceiverChain(state: SessionState, chain: ReceiverChain): SessionState {
  const index = state.receiverChains.findIndex((c) => constantTimeEqual(c.ratchetKey, chain.ratchetKey));
  let chains: ReceiverChain[];
  if (index >= 0) {
    chains = state.receiverChains.slice();
    chains[index] = chain;
  } else {
    chains = [...state.receiverChains, chain];
    if (chains.length > MAX_RECEIVER_CHAINS) chains = chains.slice(chains.length - MAX_RECEIVER_CHAINS);
  }
  return { ...state, receiverChains: chains };
}

/** `skipped` plus new seeds, dropping the oldest beyond MAX_MESSAGE_KEYS. */
export function withSkippedKeys(
  skipped: ReadonlyMap<number, SecretBytes>,
  added: readonly (readonly [number, SecretBytes])[],
): ReadonlyMap<number, SecretBytes> {
  if (added.length === 0) return skipped;
  const next = new Map(skipped);
  for (const [counter, seed] of added) next.set(counter, seed);
  for (const counter of next.keys()) {
    if (next.size <= MAX_MESSAGE_KEYS) break;
    next.delete(counter);
  }
  return next;
}

/** `skipped` without `counter`. */
export function withoutSkippedKey(skipped: ReadonlyMap<number, SecretBytes>, counter: number): ReadonlyMap<number, SecretBytes> {
  const next = new Map(skipped);
  next.delete(counter);
  return next;
}

/** Skipped keys held across all of a session's chains. */
export function skippedKeyCount(state: SessionState): number {
  return state.receiverChains.reduce((sum, chain) => sum + chain.skipped.size, 0);
}
