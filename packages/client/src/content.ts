/**
 * The plaintext inside every Parley message: a versioned protobuf, padded.
 *
 *   Content = { version=1 (uint32, CONTENT_VERSION),
 *               sent_at=2 (uint64 ms, the author's clock; with the author it names the message),
 *               exactly one of:
 *                 text=3             { body=1 (string), resent_for=2 (uint64, optional: see below) }
 *                 receipt=4          { type=1 (1 delivery, 2 read), sent_at=2 (repeated uint64) }
 *                 typing=5           { action=1 (1 started, 2 stopped) }
 *                 sync=6             { destination=1 (string, canonical username), content=2 (a Content of kind text) }
 *                 decryption_error=7 { failed_at=1 (uint64, the server timestamp of the envelope that failed),
 *                                      source_device=2 (uint32, the device it came from) } }
 *
 *   padded = Content ‖ 0x80 ‖ 0x00… up to a multiple of PADDING_BLOCK bytes
 *
 * Padding hides a message's exact length from everyone but its recipients.
 * A text resent after a decryption error names, in `resent_for`, the server
 * timestamp of the envelope its recipient could not decrypt.
 *
 * Forward compatibility: unknown fields are skipped, and a content of a newer
 * version, or whose kind this version does not know (a future attachment,
 * reaction or edit), decodes as `unsupported` instead of failing, so an old
 * client can say "this needs a newer Parley". Decoders take hostile bytes and
 * throw only `ProtocolError('INVALID_ENCODING')`.
 */
import {
  fromUtf8,
  isCanonicalUsername,
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

/** The version this client writes. Readers accept it and below; above is `unsupported`. */
export const CONTENT_VERSION = 1;
/** Signal's transport padding block: lengths are rounded up to a multiple of this. */
export const PADDING_BLOCK = 160;
/** Longer texts belong in attachments (a later content kind): 64 KiB is pages of text. */
export const MAX_TEXT_BYTES = 64 * 1024;
/** Receipts for more messages than this are split: it bounds the work one message can ask for. */
export const MAX_RECEIPT_IDS = 1000;

const MAX_U64 = Number.MAX_SAFE_INTEGER;

export interface TextContent {
  readonly kind: 'text';
  readonly sentAt: number;
  readonly body: string;
  /** Set on a text resent after a decryption error: the server timestamp of the envelope that failed. */
  readonly resentFor?: number;
}

export type Content =
  | TextContent
  | { readonly kind: 'receipt'; readonly sentAt: number; readonly receipt: 'delivery' | 'read'; readonly messages: readonly number[] }
  | { readonly kind: 'typing'; readonly sentAt: number; readonly typing: 'started' | 'stopped' }
  /** A message this account sent from another of its devices (a sync transcript). */
  | { readonly kind: 'sync'; readonly sentAt: number; readonly destination: string; readonly message: TextContent }
  /** "I could not decrypt the envelope you sent at `failedAt`": the author resends it in a fresh session. */
  | { readonly kind: 'decryption-error'; readonly sentAt: number; readonly failedAt: number; readonly sourceDevice: number }
  /** A content this version cannot show. */
  | { readonly kind: 'unsupported'; readonly sentAt: number; readonly version: number };

const invalid = (message: string) => new ProtocolError('INVALID_ENCODING', message);
const RECEIPT_TYPES = { delivery: 1, read: 2 } as const;
const TYPING_ACTIONS = { started: 1, stopped: 2 } as const;

function checkTime(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative safe integer`);
}

function encodeText(text: TextContent): Uint8Array {
  const body = utf8(text.body);
  if (body.length === 0 || body.length > MAX_TEXT_BYTES) throw new RangeError(`a text is 1–${MAX_TEXT_BYTES} bytes of UTF-8`);
  const writer = new ProtoWriter().bytes(1, body);
  if (text.resentFor !== undefined) writer.uint64(2, text.resentFor);
  return writer.finish();
}

/** The protobuf, unpadded (a sync transcript nests one). */
function encodeBare(content: Exclude<Content, { kind: 'unsupported' }>): Uint8Array {
  checkTime(content.sentAt, 'sentAt');
  const writer = new ProtoWriter().uint32(1, CONTENT_VERSION).uint64(2, content.sentAt);
  switch (content.kind) {
    case 'text':
      return writer.bytes(3, encodeText(content)).finish();
    case 'receipt': {
      if (content.messages.length === 0 || content.messages.length > MAX_RECEIPT_IDS) throw new RangeError(`a receipt names 1–${MAX_RECEIPT_IDS} messages`);
      const inner = new ProtoWriter().uint32(1, RECEIPT_TYPES[content.receipt]);
      for (const sentAt of content.messages) inner.uint64(2, sentAt);
      return writer.bytes(4, inner.finish()).finish();
    }
    case 'typing':
      return writer.bytes(5, new ProtoWriter().uint32(1, TYPING_ACTIONS[content.typing]).finish()).finish();
    case 'sync':
      if (!isCanonicalUsername(content.destination)) throw new RangeError('a sync destination is a canonical username');
      return writer.bytes(6, new ProtoWriter().bytes(1, utf8(content.destination)).bytes(2, encodeBare(content.message)).finish()).finish();
    case 'decryption-error':
      checkTime(content.failedAt, 'failedAt');
      return writer.bytes(7, new ProtoWriter().uint64(1, content.failedAt).uint32(2, content.sourceDevice).finish()).finish();
  }
}

/**
 * Encodes and pads a content, ready to encrypt.
 * @throws RangeError for values out of range (an empty or oversized text, a bad username), TypeError for `unsupported`.
 */
export function encodeContent(content: Content): Uint8Array {
  if (content.kind === 'unsupported') throw new TypeError('an unsupported content cannot be sent');
  const bare = encodeBare(content);
  const padded = new Uint8Array(Math.ceil((bare.length + 1) / PADDING_BLOCK) * PADDING_BLOCK);
  padded.set(bare);
  padded[bare.length] = 0x80;
  return padded;
}

function decodeText(bytes: Uint8Array): TextContent & { sentAt: 0 } {
  const f = readProto(bytes);
  const body = requiredBytes(f, 1, 'text body');
  if (body.length === 0 || body.length > MAX_TEXT_BYTES) throw invalid(`a text is 1–${MAX_TEXT_BYTES} bytes`);
  const resentFor = f.get(2);
  if (resentFor !== undefined && typeof resentFor !== 'number') throw invalid('resent_for is not a varint');
  return { kind: 'text', sentAt: 0, body: fromUtf8(body, 'text body'), ...(resentFor === undefined ? {} : { resentFor: uint64(resentFor, 'resent_for') }) };
}

function uint64(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value > MAX_U64) throw invalid(`${name} is beyond 2^53`);
  return value;
}

function decodeBare(bytes: Uint8Array, nested: boolean): Content {
  const all = readProtoFields(bytes);
  const fields = new Map<number, ProtoValue>(all);
  const version = requiredUint32(fields, 1, 'version');
  if (version === 0) throw invalid('version 0 does not exist');
  const sentAt = requiredUint64(fields, 2, 'sent at');
  if (version > CONTENT_VERSION) return { kind: 'unsupported', sentAt, version };
  const kinds = [3, 4, 5, 6, 7].filter((n) => fields.has(n));
  if (kinds.length > 1) throw invalid('a content has one kind');
  const kind = kinds[0];
  if (kind === undefined) return { kind: 'unsupported', sentAt, version };
  const body = requiredBytes(fields, kind, 'content');
  switch (kind) {
    case 3:
      return { ...decodeText(body), sentAt };
    case 4: {
      const inner = readProtoFields(body);
      const type = requiredUint32(new Map(inner), 1, 'receipt type');
      if (type !== 1 && type !== 2) throw invalid(`unknown receipt type ${type}`);
      const messages: number[] = [];
      for (const [n, value] of inner) {
        if (n !== 2) continue;
        if (typeof value !== 'number') throw invalid('a receipt time is not a varint');
        if (messages.length === MAX_RECEIPT_IDS) throw invalid(`a receipt names at most ${MAX_RECEIPT_IDS} messages`);
        messages.push(uint64(value, 'receipt time'));
      }
      if (messages.length === 0) throw invalid('a receipt names at least one message');
      return { kind: 'receipt', sentAt, receipt: type === 1 ? 'delivery' : 'read', messages };
    }
    case 5: {
      const action = requiredUint32(readProto(body), 1, 'typing action');
      if (action !== 1 && action !== 2) throw invalid(`unknown typing action ${action}`);
      return { kind: 'typing', sentAt, typing: action === 1 ? 'started' : 'stopped' };
    }
    case 6: {
      if (nested) throw invalid('a sync transcript does not nest another');
      const inner = readProto(body);
      const destination = fromUtf8(requiredBytes(inner, 1, 'sync destination'), 'sync destination');
      if (!isCanonicalUsername(destination)) throw invalid('a sync destination is a canonical username');
      const message = decodeBare(requiredBytes(inner, 2, 'sync content'), true);
      if (message.kind !== 'text') throw invalid('a sync transcript carries a text');
      return { kind: 'sync', sentAt, destination, message };
    }
    default: {
      const inner = readProto(body);
      return { kind: 'decryption-error', sentAt, failedAt: requiredUint64(inner, 1, 'failed at'), sourceDevice: requiredUint32(inner, 2, 'source device') };
    }
  }
}

/**
 * Strips the padding and decodes a content.
 * @throws ProtocolError `INVALID_ENCODING`, nothing else.
 */
export function decodeContent(padded: Uint8Array): Content {
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  if (end < 0 || padded[end] !== 0x80) throw invalid('the padding does not end in 0x80');
  return decodeBare(padded.subarray(0, end), false);
}
