/**
 * The content format: every kind round-trips, padded to a multiple of
 * PADDING_BLOCK; the decoder refuses, with `ProtocolError('INVALID_ENCODING')`
 * and nothing else, every malformed content (each refusal beside the boundary
 * value that is still accepted), and reads a newer version or an unknown kind
 * as `unsupported`; the encoder refuses out-of-range values with RangeError or
 * TypeError; and fuzzing (random bytes, mutations of valid contents) shows
 * that whatever the input the decoder either returns a content that
 * round-trips or throws that one error.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { isProtocolError, limits, ProtoWriter } from '@parley/protocol';

import {
  CONTENT_VERSION,
  decodeContent,
  encodeContent,
  MAX_GROUP_CHANGES,
  MAX_RECEIPT_IDS,
  MAX_TEXT_BYTES,
  PADDING_BLOCK,
  type Content,
  type TextContent,
} from './content.js';
import { applyMutations, mutations, outcome } from '../../../testing/fuzz.js';

const { MAX_DEVICE_ID } = limits;
const bytes = (...values: number[]) => Uint8Array.from(values);
const utf8 = (s: string) => new TextEncoder().encode(s);
const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const range = (n: number, from = 1) => Array.from({ length: n }, (_, i) => from + i);

const varint = (v: bigint): number[] => (v < 0x80n ? [Number(v)] : [Number(v & 0x7fn) | 0x80, ...varint(v >> 7n)]);
/** A varint field holding any value, even one the writer refuses. */
const rawVarint = (field: number, value: bigint) => Uint8Array.from([...varint(BigInt(field) << 3n), ...varint(value)]);
const message = (field: number, body: Uint8Array) => new ProtoWriter().bytes(field, body).finish();

/** Signal's padding, written independently of the module: 0x80, then zeros to the next block. */
const pad = (bare: Uint8Array) => {
  const out = new Uint8Array(Math.ceil((bare.length + 1) / PADDING_BLOCK) * PADDING_BLOCK);
  out.set(bare);
  out[bare.length] = 0x80;
  return out;
};
/** The protobuf inside a padded content. */
const unpad = (padded: Uint8Array) => padded.subarray(0, padded.findLastIndex((b) => b !== 0));

/** A content's header (version, sent_at), then the given fields, unpadded. */
const rawBare = (version: bigint | undefined, sentAt: bigint | undefined, ...fields: Uint8Array[]) =>
  concat(version === undefined ? bytes() : rawVarint(1, version), sentAt === undefined ? bytes() : rawVarint(2, sentAt), ...fields);
/** A padded version-1 content sent at 1 with the given fields. */
const raw = (...fields: Uint8Array[]) => pad(rawBare(1n, 1n, ...fields));
const rawText = (body: Uint8Array, ...extra: Uint8Array[]) => message(3, concat(message(1, body), ...extra));
const rawReceipt = (type: bigint | undefined, ...ids: bigint[]) =>
  message(4, concat(type === undefined ? bytes() : rawVarint(1, type), ...ids.map((id) => rawVarint(2, id))));
const rawTyping = (action: bigint | undefined) => message(5, action === undefined ? bytes() : rawVarint(1, action));
const rawSync = (destination: Uint8Array | undefined, content: Uint8Array | undefined) =>
  message(
    6,
    concat(destination === undefined ? bytes() : message(1, destination), content === undefined ? bytes() : message(2, content)),
  );
const rawDecryptionError = (failedAt: bigint | undefined, device: bigint | undefined) =>
  message(7, concat(failedAt === undefined ? bytes() : rawVarint(1, failedAt), device === undefined ? bytes() : rawVarint(2, device)));
const rawGroupChange = (...changes: Uint8Array[]) => message(8, concat(...changes.map((c) => message(1, c))));
/** A sender key (9) or group text (10): group id, then the distribution or the body. */
const rawGroupField = (kind: number, groupId: Uint8Array | undefined, second: Uint8Array | undefined) =>
  message(kind, concat(groupId === undefined ? bytes() : message(1, groupId), second === undefined ? bytes() : message(2, second)));
const GROUP_ID = new Uint8Array(16).fill(0x42);
/** An unpadded version-1 text, as a sync transcript carries it. */
const innerText = (body = 'hi', ...extra: Uint8Array[]) => rawBare(1n, 5n, rawText(utf8(body), ...extra));

const text = (body: string, overrides: Partial<TextContent> = {}): TextContent => ({ kind: 'text', sentAt: 1_700_000_000_000, body, ...overrides });

const EXAMPLES: { readonly [K in Content['kind']]: Extract<Content, { kind: K }>[] } = {
  text: [
    text('hello'),
    text('Grüße — 你好 — 👋🏽', { sentAt: 0 }),
    text('x', { sentAt: Number.MAX_SAFE_INTEGER, resentFor: 0 }),
    text('resent', { resentFor: Number.MAX_SAFE_INTEGER }),
    text('a'.repeat(MAX_TEXT_BYTES)),
    text('€'.repeat(Math.floor(MAX_TEXT_BYTES / 3))),
  ],
  receipt: [
    { kind: 'receipt', sentAt: 2, receipt: 'delivery', messages: [1_700_000_000_000] },
    { kind: 'receipt', sentAt: 3, receipt: 'read', messages: [0, 0, Number.MAX_SAFE_INTEGER] },
    { kind: 'receipt', sentAt: 4, receipt: 'read', messages: range(MAX_RECEIPT_IDS, 1_700_000_000_000) },
  ],
  typing: [
    { kind: 'typing', sentAt: 5, typing: 'started' },
    { kind: 'typing', sentAt: 6, typing: 'stopped' },
  ],
  sync: [
    { kind: 'sync', sentAt: 7, destination: 'bob', message: text('to bob', { sentAt: 7 }) },
    { kind: 'sync', sentAt: 8, destination: 'z'.repeat(32), message: text('resent to z', { sentAt: 2, resentFor: 9 }) },
  ],
  'decryption-error': [
    { kind: 'decryption-error', sentAt: 9, failedAt: 1_700_000_000_123, sourceDevice: 1 },
    { kind: 'decryption-error', sentAt: 0, failedAt: 0, sourceDevice: MAX_DEVICE_ID },
  ],
  'group-change': [
    { kind: 'group-change', sentAt: 10, changes: [bytes(1)] },
    { kind: 'group-change', sentAt: 11, changes: range(MAX_GROUP_CHANGES).map((i) => bytes(i & 0xff, i >> 8)) },
  ],
  'sender-key': [{ kind: 'sender-key', sentAt: 12, groupId: new Uint8Array(16).fill(7), distribution: bytes(0x33, 1, 2, 3) }],
  'group-text': [
    { kind: 'group-text', sentAt: 13, groupId: new Uint8Array(16).fill(9), body: 'hello, group' },
    { kind: 'group-text', sentAt: 14, groupId: new Uint8Array(16), body: 'a'.repeat(MAX_TEXT_BYTES) },
  ],
  'group-resync': [
    { kind: 'group-resync', sentAt: 15, groupId: new Uint8Array(16).fill(3), have: 0 },
    { kind: 'group-resync', sentAt: 16, groupId: new Uint8Array(16).fill(4), have: Number.MAX_SAFE_INTEGER },
  ],
  unsupported: [],
};
const ALL_EXAMPLES: Content[] = Object.values(EXAMPLES).flat();

describe('content round-trips', () => {
  it.each(ALL_EXAMPLES.map((c) => [c.kind, c] as const))('%s', (_, content) => {
    const encoded = encodeContent(content);
    const decoded = decodeContent(encoded);
    expect(decoded).toEqual(content);
    expect(encodeContent(decoded)).toEqual(encoded);
  });

  it('writes the documented bytes: the protobuf in tag order, 0x80, zeros to the block', () => {
    const sentAt = 1_700_000_000_000;
    const bare = new ProtoWriter()
      .uint32(1, CONTENT_VERSION)
      .uint64(2, sentAt)
      .bytes(3, new ProtoWriter().bytes(1, utf8('hi')).finish())
      .finish();
    const expected = new Uint8Array(PADDING_BLOCK);
    expected.set([...bare, 0x80]);
    expect(encodeContent(text('hi', { sentAt }))).toEqual(expected);
    expect(encodeContent({ kind: 'receipt', sentAt: 1, receipt: 'read', messages: [3, 4] })).toEqual(
      pad(bytes(0x08, 1, 0x10, 1, 0x22, 6, 0x08, 2, 0x10, 3, 0x10, 4)),
    );
    expect(encodeContent({ kind: 'decryption-error', sentAt: 1, failedAt: 5, sourceDevice: 2 })).toEqual(
      pad(bytes(0x08, 1, 0x10, 1, 0x3a, 4, 0x08, 5, 0x10, 2)),
    );
  });

  it('pads to a multiple of PADDING_BLOCK, at least one byte, at most a block', () => {
    // Texts whose protobuf is 158, 159 and 160 bytes: the last two straddle the first block's end.
    const bareLength = (n: number) => unpad(encodeContent(text('a'.repeat(n), { sentAt: 1 }))).length;
    const n = range(200).find((i) => bareLength(i) === PADDING_BLOCK - 1)!;
    expect(encodeContent(text('a'.repeat(n - 1), { sentAt: 1 })).length).toBe(PADDING_BLOCK);
    expect(encodeContent(text('a'.repeat(n), { sentAt: 1 })).length).toBe(PADDING_BLOCK);
    expect(encodeContent(text('a'.repeat(n + 1), { sentAt: 1 })).length).toBe(2 * PADDING_BLOCK);
    for (const content of ALL_EXAMPLES) {
      const encoded = encodeContent(content);
      const bare = unpad(encoded);
      expect(encoded.length % PADDING_BLOCK).toBe(0);
      expect(encoded.length).toBeGreaterThanOrEqual(bare.length + 1);
      expect(encoded.length).toBeLessThanOrEqual(bare.length + PADDING_BLOCK);
      expect(encoded[bare.length]).toBe(0x80);
    }
  });

  it('reads padding of any length, block or not', () => {
    const bare = unpad(encodeContent(text('hi')));
    for (const zeros of [0, 1, 159, 160, 1000]) {
      expect(decodeContent(concat(bare, bytes(0x80), new Uint8Array(zeros)))).toEqual(text('hi'));
    }
  });

  it('takes nothing from the input buffer', () => {
    const encoded = encodeContent(EXAMPLES.sync[1]!);
    const decoded = decodeContent(encoded);
    encoded.fill(0);
    expect(decoded).toEqual(EXAMPLES.sync[1]);
  });
});

describe('forward compatibility', () => {
  const hi = raw(rawText(utf8('hi')));
  const decodedHi = { kind: 'text', sentAt: 1, body: 'hi' };

  it('skips unknown fields of every wire type, in the content and in its kind', () => {
    const unknown = concat(rawVarint(15, 7n), message(16, bytes(1, 2, 3)), bytes(0x89, 0x01, 1, 2, 3, 4, 5, 6, 7, 8), bytes(0x95, 0x01, 1, 2, 3, 4));
    expect(decodeContent(hi)).toEqual(decodedHi);
    expect(decodeContent(pad(concat(rawBare(1n, 1n, rawText(utf8('hi'))), unknown)))).toEqual(decodedHi);
    expect(decodeContent(pad(concat(unknown, rawBare(1n, 1n, rawText(utf8('hi'))))))).toEqual(decodedHi);
    expect(decodeContent(raw(rawText(utf8('hi'), unknown)))).toEqual(decodedHi);
    expect(decodeContent(raw(rawTyping(1n), rawVarint(99, 1n)))).toEqual({ kind: 'typing', sentAt: 1, typing: 'started' });
  });

  it('reads a content of a newer version as unsupported, without reading past sent_at', () => {
    expect(decodeContent(pad(rawBare(2n, 42n, rawText(utf8('hi')))))).toEqual({ kind: 'unsupported', sentAt: 42, version: 2 });
    // What a known kind's field holds in a later version is that version's business.
    expect(decodeContent(pad(rawBare(2n, 42n, rawVarint(3, 1n), rawTyping(9n))))).toEqual({ kind: 'unsupported', sentAt: 42, version: 2 });
    expect(decodeContent(pad(rawBare(0xffff_ffffn, 0n)))).toEqual({ kind: 'unsupported', sentAt: 0, version: 0xffff_ffff });
  });

  it('reads a content of an unknown kind (a future attachment=12), or of none, as unsupported', () => {
    const attachment = message(12, message(1, bytes(0xaa, 0xbb)));
    expect(decodeContent(raw(attachment))).toEqual({ kind: 'unsupported', sentAt: 1, version: CONTENT_VERSION });
    expect(decodeContent(raw())).toEqual({ kind: 'unsupported', sentAt: 1, version: CONTENT_VERSION });
    // A known kind beside an unknown field is the known kind.
    expect(decodeContent(raw(rawText(utf8('hi')), attachment))).toEqual(decodedHi);
  });

  it('reads a sync transcript of a content it does not support as unsupported', () => {
    const newer = rawBare(2n, 5n, rawText(utf8('hi')));
    const attachment = rawBare(1n, 5n, message(12, bytes(1)));
    expect(decodeContent(raw(rawSync(utf8('bob'), newer)))).toEqual({ kind: 'unsupported', sentAt: 1, version: 2 });
    expect(decodeContent(raw(rawSync(utf8('bob'), attachment)))).toEqual({ kind: 'unsupported', sentAt: 1, version: 1 });
  });

  it('cannot encode unsupported: it is only what a newer client sent', () => {
    expect(() => encodeContent({ kind: 'unsupported', sentAt: 1, version: 2 })).toThrow(TypeError);
  });
});

/** [what is wrong, a content just inside the rule, the content that breaks it]. */
type Case = readonly [string, Uint8Array, Uint8Array];

const over = (n: number) => 'a'.repeat(n);
const cases: Case[] = [
  // Padding
  ['empty input', raw(rawTyping(1n)), new Uint8Array(0)],
  ['only zeros', raw(rawTyping(1n)), new Uint8Array(PADDING_BLOCK)],
  ['no padding marker', concat(rawBare(1n, 1n, rawText(utf8('hi'))), bytes(0x80)), rawBare(1n, 1n, rawText(utf8('hi')))],
  ['zeros without the marker', pad(rawBare(1n, 1n, rawText(utf8('hi')))), concat(rawBare(1n, 1n, rawText(utf8('hi'))), new Uint8Array(10))],
  ['a marker of 0x81', concat(rawBare(1n, 1n, rawTyping(1n)), bytes(0x80, 0)), concat(rawBare(1n, 1n, rawTyping(1n)), bytes(0x81, 0))],
  ['only a marker (no version)', raw(), bytes(0x80)],
  // Header
  ['version 0', pad(rawBare(1n, 1n, rawTyping(1n))), pad(rawBare(0n, 1n, rawTyping(1n)))],
  ['no version', pad(rawBare(1n, 1n, rawTyping(1n))), pad(rawBare(undefined, 1n, rawTyping(1n)))],
  ['version 2^32', pad(rawBare(2n ** 32n - 1n, 1n)), pad(rawBare(2n ** 32n, 1n))],
  ['a version that is bytes', pad(rawBare(1n, 1n)), pad(concat(message(1, bytes(1)), rawVarint(2, 1n)))],
  ['no sent_at', pad(rawBare(1n, 0n, rawTyping(1n))), pad(rawBare(1n, undefined, rawTyping(1n)))],
  ['no sent_at in a newer version', pad(rawBare(2n, 0n)), pad(rawBare(2n, undefined))],
  ['sent_at 2^53', pad(rawBare(1n, 2n ** 53n - 1n, rawTyping(1n))), pad(rawBare(1n, 2n ** 53n, rawTyping(1n)))],
  ['a truncated varint', pad(rawBare(1n, 300n)), pad(rawBare(1n, 300n).subarray(0, 3))],
  ['a group (wire type 3) among unknown fields', raw(rawTyping(1n), rawVarint(15, 1n)), raw(rawTyping(1n), bytes(0x7b))],
  // Kinds
  ['two kinds', raw(rawText(utf8('hi'))), raw(rawText(utf8('hi')), rawTyping(1n))],
  ['all five kinds', raw(rawTyping(1n)), raw(rawText(utf8('hi')), rawReceipt(1n, 1n), rawTyping(1n), rawSync(utf8('bob'), innerText()), rawDecryptionError(1n, 1n))],
  ['a kind that is a varint', raw(rawTyping(1n)), raw(rawVarint(5, 1n))],
  // Text
  ['an empty text', raw(rawText(utf8('a'))), raw(rawText(new Uint8Array(0)))],
  [`a text of MAX_TEXT_BYTES + 1 (${MAX_TEXT_BYTES + 1}) bytes`, raw(rawText(utf8(over(MAX_TEXT_BYTES)))), raw(rawText(utf8(over(MAX_TEXT_BYTES + 1))))],
  ['a text that is not UTF-8', raw(rawText(bytes(0x61, 0xc3, 0xa9))), raw(rawText(bytes(0x61, 0xc3, 0x28)))],
  ['a text that is a UTF-8 surrogate', raw(rawText(utf8('\u{10000}'))), raw(rawText(bytes(0xed, 0xa0, 0x80)))],
  ['a text without a body', raw(rawText(utf8('a'))), raw(message(3, rawVarint(2, 1n)))],
  ['a body that is a varint', raw(rawText(utf8('a'))), raw(message(3, rawVarint(1, 97n)))],
  ['resent_for 2^53', raw(rawText(utf8('a'), rawVarint(2, 2n ** 53n - 1n))), raw(rawText(utf8('a'), rawVarint(2, 2n ** 53n)))],
  ['a resent_for that is bytes', raw(rawText(utf8('a'), rawVarint(2, 1n))), raw(rawText(utf8('a'), message(2, bytes(1))))],
  // Receipt
  ['receipt type 0', raw(rawReceipt(1n, 1n)), raw(rawReceipt(0n, 1n))],
  ['receipt type 3', raw(rawReceipt(2n, 1n)), raw(rawReceipt(3n, 1n))],
  ['a receipt without a type', raw(rawReceipt(1n, 1n)), raw(rawReceipt(undefined, 1n))],
  ['a receipt of no message', raw(rawReceipt(1n, 0n)), raw(rawReceipt(1n))],
  [
    `a receipt of MAX_RECEIPT_IDS + 1 (${MAX_RECEIPT_IDS + 1}) messages`,
    raw(rawReceipt(2n, ...range(MAX_RECEIPT_IDS).map(BigInt))),
    raw(rawReceipt(2n, ...range(MAX_RECEIPT_IDS + 1).map(BigInt))),
  ],
  ['a receipt message 2^53', raw(rawReceipt(1n, 2n ** 53n - 1n)), raw(rawReceipt(1n, 2n ** 53n))],
  ['a receipt message that is bytes', raw(rawReceipt(1n, 1n)), raw(message(4, concat(rawVarint(1, 1n), message(2, bytes(1)))))],
  // Typing
  ['typing action 0', raw(rawTyping(1n)), raw(rawTyping(0n))],
  ['typing action 3', raw(rawTyping(2n)), raw(rawTyping(3n))],
  ['typing without an action', raw(rawTyping(2n)), raw(rawTyping(undefined))],
  // Sync
  ['a sync to a non-canonical account', raw(rawSync(utf8('alice'), innerText())), raw(rawSync(utf8('Alice'), innerText()))],
  ['a sync to a Cyrillic look-alike', raw(rawSync(utf8('alice'), innerText())), raw(rawSync(utf8('аlice'), innerText()))],
  ['a sync to a 33-letter account', raw(rawSync(utf8(over(32)), innerText())), raw(rawSync(utf8(over(33)), innerText()))],
  ['a sync destination that is not UTF-8', raw(rawSync(utf8('alice'), innerText())), raw(rawSync(bytes(0x61, 0xff, 0x62), innerText()))],
  ['a sync without a destination', raw(rawSync(utf8('bob'), innerText())), raw(rawSync(undefined, innerText()))],
  ['a sync without a content', raw(rawSync(utf8('bob'), innerText())), raw(rawSync(utf8('bob'), undefined))],
  ['a sync of a typing', raw(rawSync(utf8('bob'), innerText())), raw(rawSync(utf8('bob'), rawBare(1n, 1n, rawTyping(1n))))],
  ['a sync of a sync', raw(rawSync(utf8('bob'), innerText())), raw(rawSync(utf8('bob'), rawBare(1n, 1n, rawSync(utf8('bob'), innerText()))))],
  ['a sync of a padded content', raw(rawSync(utf8('bob'), innerText())), raw(rawSync(utf8('bob'), pad(innerText())))],
  ['a sync of a bad text', raw(rawSync(utf8('bob'), innerText('a'))), raw(rawSync(utf8('bob'), rawBare(1n, 1n, rawText(bytes()))))],
  ['a sync of a version-0 content', raw(rawSync(utf8('bob'), rawBare(1n, 1n, rawText(utf8('a'))))), raw(rawSync(utf8('bob'), rawBare(0n, 1n, rawText(utf8('a')))))],
  // Group kinds
  ['a group change of no change', raw(rawGroupChange(bytes(1))), raw(rawGroupChange())],
  ['an empty group change', raw(rawGroupChange(bytes(1))), raw(rawGroupChange(bytes()))],
  [
    `a group change message of MAX_GROUP_CHANGES + 1 (${MAX_GROUP_CHANGES + 1}) changes`,
    raw(rawGroupChange(...range(MAX_GROUP_CHANGES).map(() => bytes(1)))),
    raw(rawGroupChange(...range(MAX_GROUP_CHANGES + 1).map(() => bytes(1)))),
  ],
  ['a group change that is a varint', raw(rawGroupChange(bytes(1))), raw(message(8, rawVarint(1, 1n)))],
  ['a sender key for a 15-byte group id', raw(rawGroupField(9, GROUP_ID, bytes(1))), raw(rawGroupField(9, GROUP_ID.subarray(1), bytes(1)))],
  ['a sender key without a group id', raw(rawGroupField(9, GROUP_ID, bytes(1))), raw(rawGroupField(9, undefined, bytes(1)))],
  ['a sender key without its distribution', raw(rawGroupField(9, GROUP_ID, bytes(1))), raw(rawGroupField(9, GROUP_ID, undefined))],
  ['an empty sender key distribution', raw(rawGroupField(9, GROUP_ID, bytes(1))), raw(rawGroupField(9, GROUP_ID, bytes()))],
  ['a group text for a 17-byte group id', raw(rawGroupField(10, GROUP_ID, utf8('a'))), raw(rawGroupField(10, concat(GROUP_ID, bytes(1)), utf8('a')))],
  ['an empty group text', raw(rawGroupField(10, GROUP_ID, utf8('a'))), raw(rawGroupField(10, GROUP_ID, bytes()))],
  ['a group text that is not UTF-8', raw(rawGroupField(10, GROUP_ID, bytes(0x61, 0xc3, 0xa9))), raw(rawGroupField(10, GROUP_ID, bytes(0x61, 0xc3, 0x28)))],
  [`a group text of MAX_TEXT_BYTES + 1 bytes`, raw(rawGroupField(10, GROUP_ID, utf8(over(MAX_TEXT_BYTES)))), raw(rawGroupField(10, GROUP_ID, utf8(over(MAX_TEXT_BYTES + 1))))],
  ['a resync for a 15-byte group id', raw(message(11, concat(message(1, GROUP_ID), rawVarint(2, 1n)))), raw(message(11, concat(message(1, GROUP_ID.subarray(1)), rawVarint(2, 1n))))],
  ['a resync without the version held', raw(message(11, concat(message(1, GROUP_ID), rawVarint(2, 0n)))), raw(message(11, message(1, GROUP_ID)))],
  ['a resync version 2^53', raw(message(11, concat(message(1, GROUP_ID), rawVarint(2, 2n ** 53n - 1n)))), raw(message(11, concat(message(1, GROUP_ID), rawVarint(2, 2n ** 53n))))],
  // Decryption error
  ['source device 0', raw(rawDecryptionError(1n, 1n)), raw(rawDecryptionError(1n, 0n))],
  ['source device MAX_DEVICE_ID + 1', raw(rawDecryptionError(1n, BigInt(MAX_DEVICE_ID))), raw(rawDecryptionError(1n, BigInt(MAX_DEVICE_ID + 1)))],
  ['a decryption error without a source device', raw(rawDecryptionError(0n, 1n)), raw(rawDecryptionError(0n, undefined))],
  ['a decryption error without failed_at', raw(rawDecryptionError(0n, 1n)), raw(rawDecryptionError(undefined, 1n))],
  ['failed_at 2^53', raw(rawDecryptionError(2n ** 53n - 1n, 1n)), raw(rawDecryptionError(2n ** 53n, 1n))],
];

describe('decodeContent refuses with INVALID_ENCODING', () => {
  it.each(cases)('%s', (_, accepted, refused) => {
    expect(outcome(() => decodeContent(accepted))).toBe('decoded');
    expect(outcome(() => decodeContent(refused))).toBe('INVALID_ENCODING');
  });
});

/** [what is wrong, a content just inside the rule, the content that breaks it, the error it throws]. */
type EncodeCase = readonly [string, Content, Content, typeof RangeError | typeof TypeError];

const receipt = (messages: number[], type = 'read'): Content => ({ kind: 'receipt', sentAt: 1, receipt: type as 'read', messages });
const sync = (destination: string, inner: Content = text('hi')): Content => ({ kind: 'sync', sentAt: 1, destination, message: inner as TextContent });
const decryptionError = (sourceDevice: number, failedAt = 1): Content => ({ kind: 'decryption-error', sentAt: 1, failedAt, sourceDevice });

const encodeCases: EncodeCase[] = [
  ['sentAt -1', text('a', { sentAt: 0 }), text('a', { sentAt: -1 }), RangeError],
  ['sentAt 2^53', text('a', { sentAt: Number.MAX_SAFE_INTEGER }), text('a', { sentAt: 2 ** 53 }), RangeError],
  ['sentAt 1.5', text('a', { sentAt: 1 }), text('a', { sentAt: 1.5 }), RangeError],
  ['sentAt NaN', text('a', { sentAt: 1 }), text('a', { sentAt: Number.NaN }), RangeError],
  ['an empty text', text('a'), text(''), RangeError],
  [`a text of MAX_TEXT_BYTES + 1 bytes`, text(over(MAX_TEXT_BYTES)), text(over(MAX_TEXT_BYTES + 1)), RangeError],
  ['a text of MAX_TEXT_BYTES + 1 bytes in fewer characters', text('é'.repeat(MAX_TEXT_BYTES / 2)), text(`${'é'.repeat(MAX_TEXT_BYTES / 2)}a`), RangeError],
  ['a text with a lone surrogate', text('\u{1f44b}'), text('\ud83d'), TypeError],
  ['a body that is not a string', text('1'), text(1 as unknown as string), TypeError],
  ['resentFor -1', text('a', { resentFor: 0 }), text('a', { resentFor: -1 }), RangeError],
  ['a receipt of no message', receipt([1]), receipt([]), RangeError],
  [`a receipt of MAX_RECEIPT_IDS + 1 messages`, receipt(range(MAX_RECEIPT_IDS)), receipt(range(MAX_RECEIPT_IDS + 1)), RangeError],
  ['a receipt message -1', receipt([0]), receipt([-1]), RangeError],
  ['an unknown receipt type', receipt([1], 'delivery'), receipt([1], 'seen'), TypeError],
  ['a receipt type from the prototype', receipt([1], 'read'), receipt([1], 'toString'), TypeError],
  ['an unknown typing action', { kind: 'typing', sentAt: 1, typing: 'stopped' }, { kind: 'typing', sentAt: 1, typing: 'paused' as 'started' }, TypeError],
  ['a sync to a non-canonical account', sync('alice'), sync('Alice'), RangeError],
  ['a sync to a two-letter account', sync('ali'), sync('al'), RangeError],
  ['a sync of a typing', sync('bob'), sync('bob', { kind: 'typing', sentAt: 1, typing: 'started' }), TypeError],
  ['a sync of an empty text', sync('bob'), sync('bob', text('')), RangeError],
  ['source device 0', decryptionError(1), decryptionError(0), RangeError],
  ['source device MAX_DEVICE_ID + 1', decryptionError(MAX_DEVICE_ID), decryptionError(MAX_DEVICE_ID + 1), RangeError],
  ['failedAt -1', decryptionError(1, 0), decryptionError(1, -1), RangeError],
  ['a group change of no change', { kind: 'group-change', sentAt: 1, changes: [bytes(1)] }, { kind: 'group-change', sentAt: 1, changes: [] }, RangeError],
  [
    'a group change of MAX_GROUP_CHANGES + 1 changes',
    { kind: 'group-change', sentAt: 1, changes: range(MAX_GROUP_CHANGES).map(() => bytes(1)) },
    { kind: 'group-change', sentAt: 1, changes: range(MAX_GROUP_CHANGES + 1).map(() => bytes(1)) },
    RangeError,
  ],
  ['a sender key for a 15-byte group', { kind: 'sender-key', sentAt: 1, groupId: GROUP_ID, distribution: bytes(1) }, { kind: 'sender-key', sentAt: 1, groupId: GROUP_ID.subarray(1), distribution: bytes(1) }, RangeError],
  ['a sender key without its distribution', { kind: 'sender-key', sentAt: 1, groupId: GROUP_ID, distribution: bytes(1) }, { kind: 'sender-key', sentAt: 1, groupId: GROUP_ID, distribution: bytes() }, RangeError],
  ['an empty group text', { kind: 'group-text', sentAt: 1, groupId: GROUP_ID, body: 'a' }, { kind: 'group-text', sentAt: 1, groupId: GROUP_ID, body: '' }, RangeError],
  ['a group text with a lone surrogate', { kind: 'group-text', sentAt: 1, groupId: GROUP_ID, body: 'a' }, { kind: 'group-text', sentAt: 1, groupId: GROUP_ID, body: '\ud83d' }, TypeError],
  ['an unknown kind', text('a'), { kind: 'attachment', sentAt: 1 } as unknown as Content, TypeError],
];

describe('encodeContent refuses out-of-range values', () => {
  it.each(encodeCases)('%s', (_, accepted, refused, error) => {
    expect(decodeContent(encodeContent(accepted))).toEqual(accepted);
    expect(() => encodeContent(refused)).toThrow(error);
  });
});

const timeArb = fc.maxSafeNat();
const usernameArb = fc.stringMatching(/^[a-z][a-z0-9_]{2,31}$/);
const textArb: fc.Arbitrary<TextContent> = fc
  .record(
    {
      kind: fc.constant('text' as const),
      sentAt: timeArb,
      body: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
      resentFor: timeArb,
    },
    { requiredKeys: ['kind', 'sentAt', 'body'] },
  )
  .map((t): TextContent => t);
const contentArb: fc.Arbitrary<Content> = fc.oneof(
  textArb,
  fc.record({
    kind: fc.constant('receipt' as const),
    sentAt: timeArb,
    receipt: fc.constantFrom('delivery' as const, 'read' as const),
    messages: fc.array(timeArb, { minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant('typing' as const), sentAt: timeArb, typing: fc.constantFrom('started' as const, 'stopped' as const) }),
  fc.record({ kind: fc.constant('sync' as const), sentAt: timeArb, destination: usernameArb, message: textArb }),
  fc.record({
    kind: fc.constant('decryption-error' as const),
    sentAt: timeArb,
    failedAt: timeArb,
    sourceDevice: fc.integer({ min: 1, max: MAX_DEVICE_ID }),
  }),
  fc.record({ kind: fc.constant('group-change' as const), sentAt: timeArb, changes: fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('sender-key' as const), sentAt: timeArb, groupId: fc.uint8Array({ minLength: 16, maxLength: 16 }), distribution: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({ kind: fc.constant('group-resync' as const), sentAt: timeArb, groupId: fc.uint8Array({ minLength: 16, maxLength: 16 }), have: timeArb }),
  fc.record({ kind: fc.constant('group-text' as const), sentAt: timeArb, groupId: fc.uint8Array({ minLength: 16, maxLength: 16 }), body: textArb.map((t) => t.body) }),
);

/** Decodes `input`; whatever is accepted (but unsupported) must encode and decode back the same. */
function decodeAndCheck(input: Uint8Array): string {
  let decoded: Content;
  try {
    decoded = decodeContent(input);
  } catch (error) {
    if (isProtocolError(error, 'INVALID_ENCODING')) return 'INVALID_ENCODING';
    throw new Error(`decodeContent threw ${String(error)}`, { cause: error });
  }
  if (decoded.kind === 'unsupported') return 'unsupported';
  expect(decodeContent(encodeContent(decoded))).toEqual(decoded);
  return 'decoded';
}

describe('content fuzzing', () => {
  it('round-trips any valid content, padded to the block', () => {
    fc.assert(
      fc.property(contentArb, (content) => {
        const encoded = encodeContent(content);
        expect(encoded.length % PADDING_BLOCK).toBe(0);
        expect(encoded.length - unpad(encoded).length).toBeLessThanOrEqual(PADDING_BLOCK);
        expect(decodeContent(encoded)).toEqual(content);
      }),
    );
  });

  it('throws only ProtocolError(INVALID_ENCODING) on random bytes, padded or not', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.boolean(), (input, padded) => {
        expect(['decoded', 'unsupported', 'INVALID_ENCODING']).toContain(decodeAndCheck(padded ? pad(input) : input));
      }),
      { numRuns: 2_000 },
    );
  });

  it('throws only ProtocolError(INVALID_ENCODING) on mutated contents, and whatever it accepts round-trips', () => {
    const seen = new Map<string, number>();
    fc.assert(
      fc.property(contentArb.map(encodeContent), fc.boolean(), mutations, (valid, inside, changes) => {
        // Mutating the padded bytes mostly hits the padding; mutating the protobuf inside tests the decoder.
        const input = inside ? pad(applyMutations(unpad(valid), changes)) : applyMutations(valid, changes);
        const result = decodeAndCheck(input);
        seen.set(result, (seen.get(result) ?? 0) + 1);
      }),
      { numRuns: 3_000 },
    );
    // The mutations must both break contents and leave some decodable, or the property says little.
    expect(seen.get('decoded')).toBeGreaterThan(100);
    expect(seen.get('INVALID_ENCODING')).toBeGreaterThan(100);
    expect(seen.get('unsupported')).toBeGreaterThan(0);
  });
});
