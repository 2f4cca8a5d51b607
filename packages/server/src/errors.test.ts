/** Close reasons: a long one is cut to what RFC 6455 allows, counting bytes, not characters. */
import { describe, expect, it } from 'vitest';

import { closeReason } from './errors.js';

describe('closeReason', () => {
  it('keeps a reason of up to 123 bytes as it is', () => {
    expect(closeReason('a'.repeat(123))).toBe('a'.repeat(123));
    expect(closeReason('–'.repeat(41))).toBe('–'.repeat(41)); // 123 bytes
  });

  it('cuts a longer one to at most 123 bytes of UTF-8, on a character boundary', () => {
    for (const text of ['a'.repeat(124), '–'.repeat(42), `a send has 1–1,024 destinations ${'–'.repeat(60)}`, `x${'😀'.repeat(40)}`]) {
      const cut = closeReason(text);
      expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(123);
      expect(cut.endsWith('...')).toBe(true);
      expect(text.startsWith(cut.slice(0, -3))).toBe(true);
      expect(cut.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, '')).not.toMatch(/[\uD800-\uDFFF]/); // no half of a surrogate pair
    }
  });
});
