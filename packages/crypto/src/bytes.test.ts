import { inspect } from 'node:util';

import { describe, expect, it } from 'vitest';

import {
  checkBytes,
  constantTimeEqual,
  CryptoError,
  deserializePublicKey,
  fromHex,
  isCryptoError,
  SecretBytes,
  serializePublicKey,
  toHex,
} from './index.js';

describe('byte helpers', () => {
  it('check type and length with the argument name', () => {
    expect(() => checkBytes('x', 'nonce')).toThrow(new TypeError('nonce must be a Uint8Array, got string'));
    expect(() => checkBytes(null, 'nonce')).toThrow(TypeError);
    expect(() => checkBytes(new Uint8Array(3), 'nonce', 12)).toThrow(new RangeError('nonce must be 12 bytes, got 3'));
    expect(checkBytes(new Uint8Array(12), 'nonce', 12).length).toBe(12);
  });

  it('round-trip hex and refuse malformed hex', () => {
    expect(toHex(fromHex('00ff10Ab'))).toBe('00ff10ab');
    expect(() => fromHex('abc')).toThrow(RangeError);
    expect(() => fromHex('zz')).toThrow(RangeError);
    expect(() => fromHex('+1')).toThrow(RangeError);
  });

  it('compare in constant time, by content and length', () => {
    expect(constantTimeEqual(fromHex('0102'), fromHex('0102'))).toBe(true);
    expect(constantTimeEqual(fromHex('0102'), fromHex('0103'))).toBe(false);
    expect(constantTimeEqual(fromHex('0102'), fromHex('010200'))).toBe(false);
  });
});

describe('SecretBytes', () => {
  it('redacts itself everywhere it could be printed', () => {
    const secret = SecretBytes.copyOf(fromHex('deadbeef'));
    expect(String(secret)).toBe('[redacted]');
    expect(JSON.stringify({ secret })).toBe('{"secret":"[redacted]"}');
    expect(inspect(secret)).toBe('SecretBytes(4) [redacted]');
    expect(inspect({ nested: { secret } })).not.toContain('de');
  });

  it('wipes to zeros and then refuses every use', () => {
    const bytes = fromHex('deadbeef');
    const secret = new SecretBytes(bytes);
    secret.wipe();
    expect(toHex(bytes)).toBe('00000000');
    expect(secret.isWiped).toBe(true);
    expect(() => secret.expose()).toThrow(CryptoError);
    expect(() => secret.equals(new Uint8Array(4))).toThrow(/wiped/);
  });

  it('defers a secret until first exposed, once, and never after a wipe', () => {
    let calls = 0;
    const deferred = SecretBytes.deferred(2, () => (calls++, fromHex('abcd')));
    expect(deferred.length).toBe(2);
    expect(calls).toBe(0);
    expect(toHex(deferred.expose())).toBe('abcd');
    expect(toHex(deferred.expose())).toBe('abcd');
    expect(calls).toBe(1);
    const never = SecretBytes.deferred(2, () => (calls++, fromHex('abcd')));
    never.wipe();
    expect(() => never.expose()).toThrow(/wiped/);
    expect(calls).toBe(1);
    expect(() => SecretBytes.deferred(3, () => fromHex('abcd')).expose()).toThrow(RangeError);
  });

  it('copies on copyOf and owns its bytes otherwise', () => {
    const bytes = fromHex('01');
    const copy = SecretBytes.copyOf(bytes);
    const owner = new SecretBytes(bytes);
    bytes[0] = 2;
    expect(copy.equals(fromHex('01'))).toBe(true);
    expect(owner.equals(fromHex('02'))).toBe(true);
  });
});

describe('Curve25519 public key encoding', () => {
  it('prefixes the 0x05 type byte and strips it again', () => {
    const raw = new Uint8Array(32).fill(9);
    const serialized = serializePublicKey(raw);
    expect(serialized[0]).toBe(0x05);
    expect(toHex(deserializePublicKey(serialized))).toBe(toHex(raw));
  });

  it('refuses hostile bytes with a typed error only', () => {
    for (const bad of [new Uint8Array(0), new Uint8Array(32), Uint8Array.of(0x08, ...new Uint8Array(32)), new Uint8Array(34)]) {
      let caught: unknown;
      try {
        deserializePublicKey(bad);
      } catch (error) {
        caught = error;
      }
      expect(isCryptoError(caught, 'INVALID_PUBLIC_KEY')).toBe(true);
      expect((caught as CryptoError).category).toBe('Validation');
    }
  });
});
