/**
 * Helpers for decoder tests: what a decoder did with an input, and random
 * mutations of valid encodings (fast-check) for fuzzing decoders of untrusted bytes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

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

/** A decoder of untrusted bytes, with the encoder it must agree with and valid values to start from. */
export interface DecoderUnderTest<T> {
  readonly valid: fc.Arbitrary<T>;
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/**
 * The fuzz tests every decoder of untrusted bytes gets, for a group of
 * decoders (a protocol's two sides, say): any valid value round-trips;
 * random bytes and mutations of valid encodings either decode or throw
 * ProtocolError(INVALID_ENCODING), nothing else; whatever a mutation makes
 * decodable round-trips too; and the mutations both break encodings and
 * leave some decodable, or the property would say little.
 */
export function describeDecoderFuzzing<M extends Record<string, unknown>>(title: string, decoders: { readonly [K in keyof M]: DecoderUnderTest<M[K]> }): void {
  const sides = Object.entries(decoders) as [string, DecoderUnderTest<unknown>][];
  describe(title, () => {
    it('round-trips any valid value', () => {
      for (const [, d] of sides) {
        fc.assert(
          fc.property(d.valid, (value) => {
            expect(d.decode(d.encode(value))).toEqual(value);
          }),
        );
      }
    });

    it('throws only ProtocolError(INVALID_ENCODING) on random bytes', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 512 }), (input) => {
          for (const [, d] of sides) expect(['decoded', 'INVALID_ENCODING']).toContain(outcome(() => d.decode(input)));
        }),
        { numRuns: 2_000 },
      );
    });

    it('throws only ProtocolError(INVALID_ENCODING) on mutated encodings, and whatever it accepts round-trips', () => {
      const seen = new Map(sides.map(([side]) => [side, new Map<string, number>()]));
      const encoded = fc.oneof(...sides.map(([, d]) => d.valid.map((v) => d.encode(v))));
      fc.assert(
        fc.property(encoded, mutations, (valid, changes) => {
          const input = applyMutations(valid, changes);
          for (const [side, d] of sides) {
            let result: 'decoded' | 'INVALID_ENCODING';
            try {
              const decoded = d.decode(input);
              expect(d.decode(d.encode(decoded))).toEqual(decoded);
              result = 'decoded';
            } catch (error) {
              if (!isProtocolError(error, 'INVALID_ENCODING')) throw new Error(`the ${side} decoder threw ${String(error)}`, { cause: error });
              result = 'INVALID_ENCODING';
            }
            const counts = seen.get(side)!;
            counts.set(result, (counts.get(result) ?? 0) + 1);
          }
        }),
        { numRuns: 2_000 },
      );
      for (const counts of seen.values()) {
        expect(counts.get('decoded')).toBeGreaterThan(50);
        expect(counts.get('INVALID_ENCODING')).toBeGreaterThan(50);
      }
    });
  });
}
