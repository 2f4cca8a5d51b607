/**
 * The plaintext inside every Parley message (what the Double Ratchet
 * encrypts): a versioned protobuf, padded.
 *
 *   Content = { version=1 (uint32, CONTENT_VERSION),
 *               sent_at=2 (uint64 ms, the author's clock; (author, sent_at) names the message for receipts),
 *               exactly one of:
 *                 text=3             { body=1 (string, UTF-8, 1..MAX_TEXT_BYTES bytes),
 *                                      resent_for=2 (uint64, optional: see below) }
 *                 receipt=4          { type=1 (uint32: 1 delivery, 2 read), sent_at=2 (repeated uint64, 1..MAX_RECEIPT_IDS) }
 *                 typing=5           { action=1 (uint32: 1 started, 2 stopped) }
 *                 sync=6             { destination=1 (string, canonical username),
 *                                      content=2 (bytes: an unpadded Content of kind text, the message this account sent) }
 *                 decryption_error=7 { failed_at=1 (uint64, the failed envelope's timestamp as the envelope gave it),
 *                                      source_device=2 (uint32, the device it came from) }
 *                 group_change=8     { change=1 (repeated bytes: signed roster changes, in version order, 1..MAX_GROUP_CHANGES) }
 *                 sender_key=9       { group_id=1 (bytes, 16), distribution=2 (bytes: a SenderKeyDistributionMessage) }
 *                 group_text=10      { group_id=1 (bytes, 16), body=2 (string, as a text's) }
 *                 group_resync=11    { group_id=1 (bytes, 16), have=2 (uint64: the roster version the asker holds) } }
 *
 *   padded = Content ‖ 0x80 ‖ 0x00… up to the next multiple of PADDING_BLOCK bytes
 *
 * Padding (Signal's transport padding) hides a message's exact length from
 * everyone but its recipients. A reader scans back over the zeros and requires
 * the 0x80 before them; it does not require the length to be a multiple of the
 * block, so that the block size can change without a new version.
 *
 * A text resent after a decryption error names, in `resent_for`, the timestamp
 * of the envelope its recipient could not decrypt (the `failed_at` it asked
 * about), so that the recipient can clear its record of the failure.
 *
 * Forward compatibility, the point of the version: unknown fields are skipped;
 * a content of a newer version, or with none of the kinds above set (a future
 * attachment=12, say), decodes as `unsupported` instead of failing, so that an
 * old client can say "this needs a newer Parley". So does a sync transcript
 * whose inner content is unsupported. A content of a newer version is not
 * read past `sent_at`: its other fields may mean something else by then.
 *
 * Group kinds (groups/groups.ts): roster changes and sender keys travel in
 * one-to-one sessions; a group text travels only inside a sender-key message,
 * and names its group so that the receiver can check the key was distributed
 * for that group.
 *
 * This module knows nothing of sessions, envelopes or storage. Decoders take
 * hostile bytes and throw only `ProtocolError('INVALID_ENCODING')`; encoders
 * check their input first and throw RangeError or TypeError, as ProtoWriter does.
 */
import {
  fromUtf8,
  isCanonicalUsername,
  limits,
  ProtocolError,
  ProtoWriter,
  readProto,
  readProtoFields,
  requiredBytes,
  requiredUint32,
  requiredUint64,
  utf8,
  type ProtoValue,
} from '@parley/protocol';

/** The version this client writes. Readers take it and below; above is `unsupported`, not an error. */
export const CONTENT_VERSION = 1;
/** Signal's transport padding block: a padded content's length is a multiple of it, which hides the exact length. */
export const PADDING_BLOCK = 160;
/** Longest text body, in UTF-8 bytes: 64 KiB is pages of text; anything longer belongs in an attachment. */
export const MAX_TEXT_BYTES = 64 * 1024;
/** Messages one receipt may name: bounds the work one message can ask for; a client splits larger batches. */
export const MAX_RECEIPT_IDS = 1000;
/** Roster changes one message may carry: a new member gets the group's whole chain, which this bounds. */
export const MAX_GROUP_CHANGES = 4096;
/** A group id's length (groups/roster.ts draws 128 random bits). */
const GROUP_ID_BYTES = 16;

/** A text message. */
export interface TextContent {
  readonly kind: 'text';
  /** The author's clock, in milliseconds since the epoch. */
  readonly sentAt: number;
  readonly body: string;
  /** Set on a text resent after a decryption error: the timestamp of the envelope that failed. */
  readonly resentFor?: number;
}

/** A decoded content, by kind. Every kind but `unsupported` can be encoded. */
export type Content =
  | TextContent
  /** The author's devices received (delivery) or showed (read) the messages it sent at these times. */
  | { readonly kind: 'receipt'; readonly sentAt: number; readonly receipt: 'delivery' | 'read'; readonly messages: readonly number[] }
  | { readonly kind: 'typing'; readonly sentAt: number; readonly typing: 'started' | 'stopped' }
  /** A text this account sent to `destination` from another of its devices (a sync transcript). */
  | { readonly kind: 'sync'; readonly sentAt: number; readonly destination: string; readonly message: TextContent }
  /** "I could not decrypt your envelope of `failedAt` from your device `sourceDevice`": a request to resend it. */
  | { readonly kind: 'decryption-error'; readonly sentAt: number; readonly failedAt: number; readonly sourceDevice: number }
  /** Signed roster changes of one group, oldest first (the whole chain for a new member). */
  | { readonly kind: 'group-change'; readonly sentAt: number; readonly changes: readonly Uint8Array[] }
  /** The author's sender key for a group (a serialized SenderKeyDistributionMessage). */
  | { readonly kind: 'sender-key'; readonly sentAt: number; readonly groupId: Uint8Array; readonly distribution: Uint8Array }
  /** A text to a group; only ever inside a sender-key message. */
  | { readonly kind: 'group-text'; readonly sentAt: number; readonly groupId: Uint8Array; readonly body: string }
  /** "I hold this group at version `have` and missed what follows": a member answers with the changes after it. */
  | { readonly kind: 'group-resync'; readonly sentAt: number; readonly groupId: Uint8Array; readonly have: number }
  /** A content of a newer version, or of a kind this version does not know. */
  | { readonly kind: 'unsupported'; readonly sentAt: number; readonly version: number };

type Fields = [number, ProtoValue][];

const invalid = (message: string) => new ProtocolError('INVALID_ENCODING', message);

const RECEIPT_TYPES = { delivery: 1, read: 2 } as const;
const TYPING_ACTIONS = { started: 1, stopped: 2 } as const;
const RECEIPT_BY_TYPE = ['delivery', 'read'] as const;
const TYPING_BY_ACTION = ['started', 'stopped'] as const;
/** The field numbers of the kinds this version knows. */
const KIND_FIELDS = [3, 4, 5, 6, 7, 8, 9, 10, 11] as const;
/** Matches a lone surrogate, which UTF-8 cannot carry (TextEncoder would silently replace it). */
const LONE_SURROGATE = /\p{Cs}/u;

// --- Encoding -----------------------------------------------------------------

function checkTime(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative safe integer`);
}

function checkDevice(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 1 || value > limits.MAX_DEVICE_ID) {
    throw new RangeError(`${name} must be an integer in 1–${limits.MAX_DEVICE_ID}`);
  }
}

/** The wire number of `key`, a string-literal union member checked at run time too. */
function code(table: Readonly<Record<string, number>>, key: string, name: string): number {
  const value = Object.hasOwn(table, key) ? table[key] : undefined;
  if (value === undefined) throw new TypeError(`${name} must be one of ${Object.keys(table).join(', ')}`);
  return value;
}

function checkGroupId(value: Uint8Array): void {
  if (!(value instanceof Uint8Array) || value.length !== GROUP_ID_BYTES) throw new RangeError(`a group id is ${GROUP_ID_BYTES} bytes`);
}

/** A text body's UTF-8. */
function textBody(value: string): Uint8Array {
  if (typeof value !== 'string') throw new TypeError('body must be a string');
  if (LONE_SURROGATE.test(value)) throw new TypeError('body must be well-formed Unicode (it has a lone surrogate)');
  const body = utf8(value);
  if (body.length === 0 || body.length > MAX_TEXT_BYTES) throw new RangeError(`body must be 1–${MAX_TEXT_BYTES} bytes of UTF-8`);
  return body;
}

function encodeText(text: TextContent): Uint8Array {
  const body = textBody(text.body);
  const writer = new ProtoWriter().bytes(1, body);
  if (text.resentFor !== undefined) {
    checkTime(text.resentFor, 'resentFor');
    writer.uint64(2, text.resentFor);
  }
  return writer.finish();
}

/** The protobuf of a content, unpadded (a sync transcript nests one). */
function encodeBare(content: Content): Uint8Array {
  checkTime(content.sentAt, 'sentAt');
  const writer = new ProtoWriter().uint32(1, CONTENT_VERSION).uint64(2, content.sentAt);
  switch (content.kind) {
    case 'text':
      return writer.bytes(3, encodeText(content)).finish();
    case 'receipt': {
      const inner = new ProtoWriter().uint32(1, code(RECEIPT_TYPES, content.receipt, 'receipt'));
      if (content.messages.length === 0 || content.messages.length > MAX_RECEIPT_IDS) {
        throw new RangeError(`a receipt names 1–${MAX_RECEIPT_IDS} messages`);
      }
      for (const sentAt of content.messages) {
        checkTime(sentAt, 'a receipt message');
        inner.uint64(2, sentAt);
      }
      return writer.bytes(4, inner.finish()).finish();
    }
    case 'typing':
      return writer.bytes(5, new ProtoWriter().uint32(1, code(TYPING_ACTIONS, content.typing, 'typing')).finish()).finish();
    case 'sync': {
      if (typeof content.destination !== 'string' || !isCanonicalUsername(content.destination)) {
        throw new RangeError('destination must be a canonical username');
      }
      if ((content.message as Content).kind !== 'text') throw new TypeError('a sync transcript carries a text');
      const inner = new ProtoWriter().bytes(1, utf8(content.destination)).bytes(2, encodeBare(content.message));
      return writer.bytes(6, inner.finish()).finish();
    }
    case 'decryption-error':
      checkTime(content.failedAt, 'failedAt');
      checkDevice(content.sourceDevice, 'sourceDevice');
      return writer.bytes(7, new ProtoWriter().uint64(1, content.failedAt).uint32(2, content.sourceDevice).finish()).finish();
    case 'group-change': {
      if (content.changes.length === 0 || content.changes.length > MAX_GROUP_CHANGES) {
        throw new RangeError(`a group change message carries 1–${MAX_GROUP_CHANGES} changes`);
      }
      const inner = new ProtoWriter();
      for (const change of content.changes) inner.bytes(1, change);
      return writer.bytes(8, inner.finish()).finish();
    }
    case 'sender-key':
      checkGroupId(content.groupId);
      if (content.distribution.length === 0) throw new RangeError('a sender key needs its distribution message');
      return writer.bytes(9, new ProtoWriter().bytes(1, content.groupId).bytes(2, content.distribution).finish()).finish();
    case 'group-text':
      checkGroupId(content.groupId);
      return writer.bytes(10, new ProtoWriter().bytes(1, content.groupId).bytes(2, textBody(content.body)).finish()).finish();
    case 'group-resync':
      checkGroupId(content.groupId);
      checkTime(content.have, 'have');
      return writer.bytes(11, new ProtoWriter().bytes(1, content.groupId).uint64(2, content.have).finish()).finish();
    case 'unsupported':
      throw new TypeError('an unsupported content cannot be encoded: it is only what a newer client sent');
    default:
      throw new TypeError(`unknown content kind ${String((content as { kind: unknown }).kind)}`);
  }
}

/**
 * Encodes a content and pads it, ready to encrypt: the protobuf, one 0x80
 * byte, then zeros up to the next multiple of {@link PADDING_BLOCK}.
 * @throws RangeError for a value out of range (a time that is not a safe
 *   non-negative integer, an empty or oversized text, a receipt of no or too
 *   many messages, a device id outside 1–MAX_DEVICE_ID, a username that is not
 *   canonical); TypeError for a value of the wrong kind (an unknown kind or
 *   `unsupported`, a receipt type or typing action not in the union, a sync of
 *   anything but a text, a text with a lone surrogate).
 */
export function encodeContent(content: Content): Uint8Array {
  const bare = encodeBare(content);
  const padded = new Uint8Array(Math.ceil((bare.length + 1) / PADDING_BLOCK) * PADDING_BLOCK);
  padded.set(bare);
  padded[bare.length] = 0x80;
  return padded;
}

// --- Decoding -----------------------------------------------------------------

function inRange(value: number, min: number, max: number, name: string): number {
  if (value < min || value > max) throw invalid(`${name} ${value} is outside ${min}–${max}`);
  return value;
}

/** Reads an optional uint64 (varint) field; the reader already refuses values beyond 2^53 − 1. */
function optionalUint64(fields: Map<number, ProtoValue>, field: number, name: string): number | undefined {
  const value = fields.get(field);
  if (value !== undefined && typeof value !== 'number') throw invalid(`${name} is not a varint`);
  return value;
}

function decodeText(body: Uint8Array, sentAt: number): TextContent {
  const fields = readProto(body);
  const text = requiredBytes(fields, 1, 'text body');
  if (text.length === 0 || text.length > MAX_TEXT_BYTES) throw invalid(`a text body is 1–${MAX_TEXT_BYTES} bytes, not ${text.length}`);
  const resentFor = optionalUint64(fields, 2, 'resent for');
  return { kind: 'text', sentAt, body: fromUtf8(text, 'text body'), ...(resentFor === undefined ? {} : { resentFor }) };
}

function decodeReceipt(body: Uint8Array, sentAt: number): Content {
  const all: Fields = readProtoFields(body);
  const type = inRange(requiredUint32(new Map(all), 1, 'receipt type'), 1, 2, 'receipt type');
  const messages: number[] = [];
  for (const [field, value] of all) {
    if (field !== 2) continue;
    if (typeof value !== 'number') throw invalid('a receipt message is not a varint');
    if (messages.length === MAX_RECEIPT_IDS) throw invalid(`a receipt names at most ${MAX_RECEIPT_IDS} messages`);
    messages.push(value);
  }
  if (messages.length === 0) throw invalid('a receipt names at least one message');
  return { kind: 'receipt', sentAt, receipt: RECEIPT_BY_TYPE[type - 1]!, messages };
}

function decodeSync(body: Uint8Array, sentAt: number): Content {
  const fields = readProto(body);
  const destination = fromUtf8(requiredBytes(fields, 1, 'sync destination'), 'sync destination');
  if (!isCanonicalUsername(destination)) throw invalid('a sync destination is a canonical username');
  const message = decodeBare(requiredBytes(fields, 2, 'sync content'), true);
  if (message.kind === 'unsupported') return { kind: 'unsupported', sentAt, version: message.version };
  if (message.kind !== 'text') throw invalid(`a sync transcript carries a text, not a ${message.kind}`);
  return { kind: 'sync', sentAt, destination, message };
}

function decodeGroupChange(body: Uint8Array, sentAt: number): Content {
  const changes: Uint8Array[] = [];
  for (const [field, value] of readProtoFields(body)) {
    if (field !== 1) continue;
    if (!(value instanceof Uint8Array) || value.length === 0) throw invalid('a group change is non-empty bytes');
    if (changes.length === MAX_GROUP_CHANGES) throw invalid(`a group change message carries at most ${MAX_GROUP_CHANGES} changes`);
    changes.push(value);
  }
  if (changes.length === 0) throw invalid('a group change message carries at least one change');
  return { kind: 'group-change', sentAt, changes };
}

function groupIdOf(fields: Map<number, ProtoValue>): Uint8Array {
  const id = requiredBytes(fields, 1, 'group id');
  if (id.length !== GROUP_ID_BYTES) throw invalid(`a group id is ${GROUP_ID_BYTES} bytes, not ${id.length}`);
  return id;
}

/** Decodes an unpadded content; `nested` for the one inside a sync transcript, which may not be a sync itself. */
function decodeBare(bytes: Uint8Array, nested: boolean): Content {
  const fields = readProto(bytes);
  const version = requiredUint32(fields, 1, 'version');
  if (version === 0) throw invalid('content version 0 does not exist');
  const sentAt = requiredUint64(fields, 2, 'sent at');
  if (version > CONTENT_VERSION) return { kind: 'unsupported', sentAt, version };
  const kinds = KIND_FIELDS.filter((field) => fields.has(field));
  if (kinds.length > 1) throw invalid(`a content has one kind, not ${kinds.length}`);
  const kind = kinds[0];
  if (kind === undefined) return { kind: 'unsupported', sentAt, version };
  const body = requiredBytes(fields, kind, 'content kind');
  switch (kind) {
    case 3:
      return decodeText(body, sentAt);
    case 4:
      return decodeReceipt(body, sentAt);
    case 5: {
      const action = inRange(requiredUint32(readProto(body), 1, 'typing action'), 1, 2, 'typing action');
      return { kind: 'typing', sentAt, typing: TYPING_BY_ACTION[action - 1]! };
    }
    case 6:
      if (nested) throw invalid('a sync transcript does not carry another');
      return decodeSync(body, sentAt);
    case 7: {
      const inner = readProto(body);
      return {
        kind: 'decryption-error',
        sentAt,
        failedAt: requiredUint64(inner, 1, 'failed at'),
        sourceDevice: inRange(requiredUint32(inner, 2, 'source device'), 1, limits.MAX_DEVICE_ID, 'source device'),
      };
    }
    case 8:
      return decodeGroupChange(body, sentAt);
    case 9: {
      const inner = readProto(body);
      const distribution = requiredBytes(inner, 2, 'sender key distribution');
      if (distribution.length === 0) throw invalid('a sender key needs its distribution message');
      return { kind: 'sender-key', sentAt, groupId: groupIdOf(inner), distribution };
    }
    case 10: {
      const inner = readProto(body);
      const text = requiredBytes(inner, 2, 'group text body');
      if (text.length === 0 || text.length > MAX_TEXT_BYTES) throw invalid(`a text body is 1–${MAX_TEXT_BYTES} bytes, not ${text.length}`);
      return { kind: 'group-text', sentAt, groupId: groupIdOf(inner), body: fromUtf8(text, 'group text body') };
    }
    case 11: {
      const inner = readProto(body);
      return { kind: 'group-resync', sentAt, groupId: groupIdOf(inner), have: requiredUint64(inner, 2, 'version held') };
    }
  }
}

/**
 * Strips the padding from a decrypted plaintext and decodes its content. A
 * content of a newer version or an unknown kind is `unsupported`, not an error.
 * @throws ProtocolError `INVALID_ENCODING` for malformed input, nothing else.
 */
export function decodeContent(bytes: Uint8Array): Content {
  let end = bytes.length - 1;
  while (end >= 0 && bytes[end] === 0) end--;
  if (end < 0 || bytes[end] !== 0x80) throw invalid('the padding does not end in 0x80 then zeros');
  return decodeBare(bytes.subarray(0, end), false);
}
