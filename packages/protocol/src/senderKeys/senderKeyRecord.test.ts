/**
 * Sender key record transitions, the cases libsignal's
 * `add_sender_key_state` is specified by: newest first, at most
 * MAX_SENDER_KEY_STATES, a held (chain id, signing key) kept with its data and
 * moved to the front, the same chain id under another key replaced; and
 * inputs are never mutated.
 */
import { SecretBytes } from '@parley/crypto';
import { describe, expect, it } from 'vitest';

import { MAX_SENDER_KEY_STATES } from '../limits.js';
import { addSenderKeyState, EMPTY_SENDER_KEY_RECORD, replaceSenderKeyState, senderKeyStateForChainId, type SenderKeyRecord } from './senderKeyRecord.js';
import type { SenderKeyState } from './senderKeyState.js';

const state = (chainId: number, signer: number, chainFill: number): SenderKeyState => ({
  messageVersion: 3,
  chainId,
  chainKey: { iteration: 0, key: new SecretBytes(new Uint8Array(32).fill(chainFill)) },
  signingKey: { publicKey: new Uint8Array(32).fill(signer), privateKey: undefined },
  skippedKeys: [],
});
const order = (record: SenderKeyRecord) => record.states.map((s) => [s.chainId, s.signingKey.publicKey[0]]);
const chainFill = (record: SenderKeyRecord, chainId: number) => senderKeyStateForChainId(record, chainId)?.chainKey.key.expose()[0];

describe('sender key record', () => {
  it(`keeps the newest first and at most ${MAX_SENDER_KEY_STATES}, dropping the oldest`, () => {
    let record = EMPTY_SENDER_KEY_RECORD;
    for (let i = 1; i <= MAX_SENDER_KEY_STATES + 1; i++) record = addSenderKeyState(record, state(i, i, i));
    expect(order(record)).toEqual([6, 5, 4, 3, 2].map((i) => [i, i]));
    expect(EMPTY_SENDER_KEY_RECORD.states).toHaveLength(0);
  });

  it('keeps the first data for a held chain id and signing key, and moves it to the front', () => {
    const first = addSenderKeyState(addSenderKeyState(EMPTY_SENDER_KEY_RECORD, state(1, 1, 1)), state(2, 2, 2));
    const again = addSenderKeyState(first, state(1, 1, 3));
    expect(order(again)).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(chainFill(again, 1)).toBe(1);
    expect(order(first)).toEqual([
      [2, 2],
      [1, 1],
    ]);
  });

  it('replaces a chain id held under another signing key', () => {
    const record = addSenderKeyState(addSenderKeyState(EMPTY_SENDER_KEY_RECORD, state(1, 1, 1)), state(1, 2, 2));
    expect(order(record)).toEqual([[1, 2]]);
    expect(chainFill(record, 1)).toBe(2);
  });

  it('replaces a state in place, keeping its position', () => {
    const record = addSenderKeyState(addSenderKeyState(EMPTY_SENDER_KEY_RECORD, state(1, 1, 1)), state(2, 2, 2));
    const replaced = replaceSenderKeyState(record, state(1, 1, 9));
    expect(order(replaced)).toEqual(order(record));
    expect(chainFill(replaced, 1)).toBe(9);
    expect(chainFill(record, 1)).toBe(1);
  });
});
