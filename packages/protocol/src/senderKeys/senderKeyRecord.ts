/**
 * What one device knows of one sender's key for one distribution (libsignal
 * `SenderKeyRecord`): up to MAX_SENDER_KEY_STATES states, newest first. The
 * newest is the one a sender encrypts with and distributes; a receiver picks
 * the state by the chain id a message names.
 *
 * Records are values: every function returns a new record.
 */
import { constantTimeEqual } from '@parley/crypto';

import { MAX_SENDER_KEY_STATES } from '../limits.js';
import type { SenderKeyState } from './senderKeyState.js';

export interface SenderKeyRecord {
  /** Newest first. */
  readonly states: readonly SenderKeyState[];
}

export const EMPTY_SENDER_KEY_RECORD: SenderKeyRecord = { states: [] };

/**
 * Adds `state` as the newest (libsignal `add_sender_key_state`). A state
 * already held with the same chain id and signing key is kept as it is (so a
 * distribution message delivered again cannot rewind the chain and replay
 * messages) and moves to the front; any other state with that chain id is
 * dropped; the oldest states go beyond MAX_SENDER_KEY_STATES.
 */
export function addSenderKeyState(record: SenderKeyRecord, state: SenderKeyState): SenderKeyRecord {
  const existing = record.states.find(
    (s) => s.chainId === state.chainId && constantTimeEqual(s.signingKey.publicKey, state.signingKey.publicKey),
  );
  const others = record.states.filter((s) => s.chainId !== state.chainId);
  return { states: [existing ?? state, ...others.slice(0, MAX_SENDER_KEY_STATES - 1)] };
}

/** The state for `chainId`, if held. */
export function senderKeyStateForChainId(record: SenderKeyRecord, chainId: number): SenderKeyState | undefined {
  return record.states.find((s) => s.chainId === chainId);
}

/** The record with the state of `state.chainId` replaced in place (its position kept, as libsignal does). */
export function replaceSenderKeyState(record: SenderKeyRecord, state: SenderKeyState): SenderKeyRecord {
  return { states: record.states.map((s) => (s.chainId === state.chainId ? state : s)) };
}
