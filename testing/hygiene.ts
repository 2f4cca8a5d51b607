/**
 * Secret hygiene for tests. It collects the secrets a test can reach: every
 * key a client's store holds (identity, auth, prekeys, session and sender-key
 * state), login and link tokens, link and join codes, plaintexts. Then it
 * searches captured text (logs) for each secret in every form a careless log
 * line could hold it:
 *
 * - raw;
 * - hex, lower and upper case;
 * - decimal (`${bytes}` and JSON arrays print a Uint8Array that way);
 * - base64 and base64url, at each of the three byte alignments. Encoded
 *   inside a longer buffer (a serialized key pair, say), a secret's base64 is
 *   not its own base64, so each alignment is searched without its edge
 *   characters.
 */
import { SecretBytes } from '@parley/crypto';
import type { ParleyClient } from '@parley/client';
import {
  deserializeKyberPreKeyRecord,
  deserializePreKeyRecord,
  deserializeSenderKeyRecord,
  deserializeSessionRecord,
  deserializeSignedPreKeyRecord,
} from '@parley/protocol';

import { contextOf } from '../packages/client/src/client.js';
import { decodeLocalDevice } from '../packages/client/src/store/records.js';

/** Shorter byte strings turn up in any long text by chance (and no secret is this short). */
const MIN_SECRET_BYTES = 12;

/** How each store namespace that holds secrets decodes (packages/client `store/records.ts`). */
const SECRET_RECORDS: readonly (readonly [string, (bytes: Uint8Array) => unknown])[] = [
  ['local', decodeLocalDevice],
  ['prekey', deserializePreKeyRecord],
  ['signed', deserializeSignedPreKeyRecord],
  ['kyber', (bytes) => deserializeKyberPreKeyRecord(bytes.subarray(1), { lastResort: bytes[0] === 1 })],
  ['session', deserializeSessionRecord],
  ['senderKey', deserializeSenderKeyRecord],
];

/** The secrets a test has met, each with a label that says what it is. */
export class Secrets {
  readonly #byHex = new Map<string, { readonly label: string; readonly bytes: Buffer }>();

  get size(): number {
    return this.#byHex.size;
  }

  /** How many secrets have a label starting with `prefix`. */
  count(prefix: string): number {
    return [...this.#byHex.values()].filter((s) => s.label.startsWith(prefix)).length;
  }

  add(label: string, secret: Uint8Array | string): void {
    const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
    if (bytes.length < MIN_SECRET_BYTES) throw new Error(`${label}: ${bytes.length} bytes is too short to search for`);
    const hex = bytes.toString('hex');
    if (!this.#byHex.has(hex)) this.#byHex.set(hex, { label, bytes });
  }

  /** Every SecretBytes in `value`, however deep (a decoded record, a key pair). */
  addWithin(label: string, value: unknown, seen = new Set<object>()): void {
    if (value instanceof SecretBytes) {
      if (!value.isWiped && value.length >= MIN_SECRET_BYTES) this.add(label, value.expose());
      return;
    }
    if (typeof value !== 'object' || value === null || value instanceof Uint8Array || seen.has(value)) return;
    seen.add(value);
    for (const child of value instanceof Map ? value.values() : Object.values(value)) this.addWithin(label, child, seen);
  }

  /** Every secret in `client`'s store: its identity and auth keys, prekeys, and the keys of its sessions and sender keys. */
  async addStoreOf(client: ParleyClient): Promise<void> {
    const { store } = contextOf(client);
    const device = `${client.username}.${client.deviceId}`;
    for (const [ns, decode] of SECRET_RECORDS) {
      for (const [key, bytes] of await store.list(ns, '')) this.addWithin(`${device} ${ns} ${key}`, decode(bytes));
    }
  }

  /** Where `text` holds a secret: one line per secret found, with the forms it was found in; empty if none. */
  leaksIn(text: string): string[] {
    const raw = Buffer.from(text, 'utf8');
    const leaks: string[] = [];
    for (const { label, bytes } of this.#byHex.values()) {
      const forms = encodings(bytes).flatMap(([form, needle]) => (text.includes(needle) ? [form] : []));
      if (raw.includes(bytes)) forms.unshift('raw');
      if (forms.length > 0) leaks.push(`${label}: ${forms.join(', ')}`);
    }
    return leaks;
  }
}

/** The forms of `bytes` a log line could show, by name. */
export function encodings(bytes: Uint8Array): [string, string][] {
  const buffer = Buffer.from(bytes);
  const hex = buffer.toString('hex');
  return [
    ['hex', hex],
    ['HEX', hex.toUpperCase()],
    ['decimal', Array.from(bytes).join(',')],
    ...[0, 1, 2].flatMap((offset): [string, string][] => [
      [`base64 at offset ${offset}`, base64Core(buffer, offset, 'base64')],
      [`base64url at offset ${offset}`, base64Core(buffer, offset, 'base64url')],
    ]),
  ];
}

/**
 * The characters that `bytes` alone decide when they are encoded `offset`
 * bytes after a 3-byte boundary: the full 3-byte groups, without a first
 * group shared with what comes before nor a last one shared with what follows.
 */
function base64Core(bytes: Buffer, offset: number, alphabet: 'base64' | 'base64url'): string {
  const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString(alphabet);
  return encoded.slice(offset === 0 ? 0 : 4, 4 * Math.floor((offset + bytes.length) / 3));
}
