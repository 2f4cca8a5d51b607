/**
 * `SecretBytes`: the only way `@parley/crypto` hands out secret material.
 *
 * It owns a `Uint8Array` (never a string), prints as `[redacted]` through
 * `toString`, `toJSON` and Node's `inspect`, compares in constant time, and can
 * be wiped. After `wipe()` every access throws `CryptoError('SECRET_WIPED')`.
 */
import { checkBytes, constantTimeEqual } from './bytes.js';
import { CryptoError } from './errors.js';

const INSPECT = Symbol.for('nodejs.util.inspect.custom');

export class SecretBytes {
  #bytes: Uint8Array | undefined;
  #materialize: (() => Uint8Array) | undefined;
  #length: number;
  #wiped = false;

  /** Takes ownership of `bytes` without copying: the caller must not keep using the array. */
  constructor(bytes: Uint8Array) {
    this.#bytes = checkBytes(bytes, 'bytes');
    this.#length = bytes.length;
  }

  /** A new secret holding a copy of `bytes`. */
  static copyOf(bytes: Uint8Array): SecretBytes {
    return new SecretBytes(checkBytes(bytes, 'bytes').slice());
  }

  /**
   * A secret of `length` bytes that stays where it lives (inside a native key
   * object, say) until the first {@link expose}, which copies it out once.
   * Providers use it so that keys used only through their key objects are
   * never copied into JavaScript memory at all.
   */
  static deferred(length: number, materialize: () => Uint8Array): SecretBytes {
    const secret = new SecretBytes(new Uint8Array(0));
    secret.#bytes = undefined;
    secret.#materialize = materialize;
    secret.#length = length;
    return secret;
  }

  get length(): number {
    return this.#length;
  }

  get isWiped(): boolean {
    return this.#wiped;
  }

  /**
   * The secret bytes themselves, not a copy. Hand them to a primitive and let
   * go: do not log, stringify or keep them beyond this secret's life.
   * @throws CryptoError `SECRET_WIPED` after {@link wipe}.
   */
  expose(): Uint8Array {
    if (this.#wiped) throw new CryptoError('SECRET_WIPED', 'secret used after it was wiped');
    if (this.#bytes === undefined) {
      const bytes = checkBytes((this.#materialize as () => Uint8Array)(), 'deferred secret', this.#length);
      this.#bytes = bytes;
      this.#materialize = undefined;
      return bytes;
    }
    return this.#bytes;
  }

  /** Constant-time equality with another secret or byte string of the same length. */
  equals(other: SecretBytes | Uint8Array): boolean {
    const theirs = other instanceof SecretBytes ? other.expose() : other;
    return constantTimeEqual(this.expose(), theirs);
  }

  /** Overwrites the bytes with zeros (if they were ever copied out). Idempotent. */
  wipe(): void {
    this.#bytes?.fill(0);
    this.#materialize = undefined;
    this.#wiped = true;
  }

  toString(): string {
    return '[redacted]';
  }

  toJSON(): string {
    return '[redacted]';
  }

  [INSPECT](): string {
    return `SecretBytes(${this.#length}) [redacted]`;
  }
}

/** Bytes an API accepts: a plain array or a secret (read without copying). */
export type BytesLike = Uint8Array | SecretBytes;

/** Reads a {@link BytesLike} argument, checking its type and optional length. */
export function readBytes(value: BytesLike, name: string, length?: number): Uint8Array {
  return checkBytes(value instanceof SecretBytes ? value.expose() : value, name, length);
}
