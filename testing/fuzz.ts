/**
 * Helpers for decoder tests: what a decoder did with an input, and random
 * mutations of valid encodings (fast-check) for fuzzing decoders of untrusted bytes.
 */
import fc from 'fast-check';

import { isProtocolError } from '@parley/protocol';

/**
 * What `decode` did: 'decoded', or the code of the ProtocolError it threw.
 * Anything else it throws is rethrown, so that the test fails on it.
 */
export function outcome(decode: () => unknown): string {
  try {
    decode();
    return 'decoded';
  } catch (error) {
    if (isProtocolError(error)) return error.code;
    throw error;
  }
}

/** Async {@link outcome}: 'resolved', or the code of the ProtocolError it rejected with. */
export async function asyncOutcome(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
    return 'resolved';
  } catch (error) {
    if (isProtocolError(error)) return error.code;
    throw error;
  }
}

/** One edit of a byte string; positions are taken modulo its length. */
export type Mutation =
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'set'; readonly at: number; readonly value: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: 'delete'; readonly at: number; readonly length: number }
  | { readonly kind: 'truncate'; readonly at: number };

const at = fc.nat();
/** One to four edits. */
export const mutations: fc.Arbitrary<Mutation[]> = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), at, bit: fc.integer({ min: 0, max: 7 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('set' as const), at, value: fc.integer({ min: 0, max: 255 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('insert' as const), at, bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at, length: fc.integer({ min: 1, max: 8 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at }) },
  ),
  { minLength: 1, maxLength: 4 },
);

/** A copy of `input` with `changes` applied in order. */
export function applyMutations(input: Uint8Array, changes: readonly Mutation[]): Uint8Array {
  let bytes = input.slice();
  for (const change of changes) {
    const i = bytes.length === 0 ? 0 : change.at % bytes.length;
    switch (change.kind) {
      case 'flip':
        if (bytes.length > 0) bytes[i]! ^= 1 << change.bit;
        break;
      case 'set':
        if (bytes.length > 0) bytes[i] = change.value;
        break;
      case 'insert':
        bytes = Uint8Array.from([...bytes.subarray(0, i), ...change.bytes, ...bytes.subarray(i)]);
        break;
      case 'delete':
        bytes = Uint8Array.from([...bytes.subarray(0, i), ...bytes.subarray(i + change.length)]);
        break;
      case 'truncate':
        bytes = bytes.slice(0, i);
        break;
    }
  }
  return bytes;
}
