/**
 * Usernames fold to one canonical form (NFKC, lower case) and are limited to
 * ASCII letters, digits and underscores, so that no two look alike.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { outcome } from '../../../../testing/fuzz.js';
import { foldUsername, isCanonicalUsername, USERNAME_MAX_LENGTH, USERNAME_MIN_LENGTH } from './username.js';

describe('foldUsername', () => {
  it.each([
    ['Alice', 'alice'],
    ['ALICE_99', 'alice_99'],
    ['alice', 'alice'],
    ['Ａｌｉｃｅ', 'alice'], // fullwidth
    ['ﬁsh', 'fish'], // the fi ligature
    ['bob²', 'bob2'], // superscript two
    ['ⓐlice', 'alice'], // circled a
    ['\u212Aate', 'kate'], // Kelvin sign
    ['a'.repeat(USERNAME_MIN_LENGTH), 'a'.repeat(USERNAME_MIN_LENGTH)],
    ['A'.repeat(USERNAME_MAX_LENGTH), 'a'.repeat(USERNAME_MAX_LENGTH)],
  ])('%s → %s', (input, folded) => {
    expect(foldUsername(input)).toBe(folded);
    expect(isCanonicalUsername(folded)).toBe(true);
  });

  it.each([
    ['too short', 'a'.repeat(USERNAME_MIN_LENGTH - 1)],
    ['too short after folding', 'ａｂ'],
    ['too long', 'a'.repeat(USERNAME_MAX_LENGTH + 1)],
    ['too long after folding', 'ﬃ'.repeat(11)],
    ['empty', ''],
    ['a leading digit', '1alice'],
    ['a leading underscore', '_alice'],
    ['a space', 'al ice'],
    ['a trailing space', 'alice '],
    ['a hyphen', 'al-ice'],
    ['a dot', 'al.ice'],
    ['a Cyrillic а', 'аlice'],
    ['a Greek ο', 'bοb'],
    ['an accented letter', 'alicé'],
    ['a Turkish dotted İ', 'İlker'],
    ['a zero-width space', 'ali\u200bce'],
    ['a zero-width joiner', 'ali\u200dce'],
    ['a combining accent', 'alice\u0301'],
    ['a newline', 'alice\n'],
    ['a NUL', 'alice\0'],
  ])('refuses %s (INVALID_USERNAME)', (_, input) => {
    expect(outcome(() => foldUsername(input))).toBe('INVALID_USERNAME');
    expect(isCanonicalUsername(input)).toBe(false);
  });

  it('folds any string to a canonical name or refuses it; canonical names are their own fold', () => {
    let folded = 0;
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.stringMatching(/^[A-Za-z\uff21-\uff3a\uff41-\uff5a][\w\uff10-\uff19]{2,31}$/)),
        (input) => {
          const result = outcome(() => foldUsername(input));
          expect(['decoded', 'INVALID_USERNAME']).toContain(result);
          if (result === 'decoded') {
            folded++;
            const name = foldUsername(input);
            expect(isCanonicalUsername(name)).toBe(true);
            expect(foldUsername(name)).toBe(name);
          }
          // isCanonicalUsername(s) says exactly that s is already folded.
          expect(isCanonicalUsername(input)).toBe(result === 'decoded' && foldUsername(input) === input);
        },
      ),
      { numRuns: 1_000 },
    );
    expect(folded).toBeGreaterThan(100);
  });
});
