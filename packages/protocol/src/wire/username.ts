/**
 * Usernames: the one name an account is found by. They are case-folded before
 * they are signed, stored or compared, so `Alice` and `alice` are one account,
 * and limited to ASCII letters, digits and underscores, so that no two
 * usernames look alike (no homoglyphs, no invisible characters).
 */
import { ProtocolError } from '../errors.js';

/** Shortest username. */
export const USERNAME_MIN_LENGTH = 3;
/** Longest username: fits a line of any client's UI and a single byte of length. */
export const USERNAME_MAX_LENGTH = 32;

const PATTERN = /^[a-z][a-z0-9_]*$/;

/**
 * The canonical form of a username: NFKC-normalized and lower-cased, then
 * checked against the alphabet and length.
 * @throws ProtocolError `INVALID_USERNAME`, whose message says what is allowed.
 */
export function foldUsername(input: string): string {
  const folded = input.normalize('NFKC').toLowerCase();
  if (folded.length < USERNAME_MIN_LENGTH || folded.length > USERNAME_MAX_LENGTH || !PATTERN.test(folded)) {
    throw new ProtocolError(
      'INVALID_USERNAME',
      `a username is ${USERNAME_MIN_LENGTH}–${USERNAME_MAX_LENGTH} letters, digits or underscores, starting with a letter`,
    );
  }
  return folded;
}

/** Whether `name` is already a canonical username (what {@link foldUsername} returns for it). */
export function isCanonicalUsername(name: string): boolean {
  return name.length >= USERNAME_MIN_LENGTH && name.length <= USERNAME_MAX_LENGTH && PATTERN.test(name);
}
