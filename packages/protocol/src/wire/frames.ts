/**
 * The frames of a device's WebSocket to its server: binary, one protobuf
 * message per frame, whose single set field says what kind of frame it is.
 *
 *   ClientFrame = auth=1 {token=1} | send=2 {request_id=1, destination=2*} | ack=3 {id=1*}
 *               | multicast=4 {request_id=1, type=2, body=3, recipient=4*}
 *     destination = {username=1, message=2*}
 *     message     = {device_id=1, registration_id=2, type=3, body=4}
 *     recipient   = {username=1, device=2*}
 *     device      = {device_id=1, registration_id=2}
 *   ServerFrame = ready=1 {} | sent=2 {request_id=1, timestamp=2}
 *               | refused=3 {request_id=1, code=2, message=3, mismatch=4*}
 *               | envelope=4 {id=1, timestamp=2, source=3, source_device=4, type=5, body=6}
 *               | drained=5 {}
 *     mismatch    = {username=1, missing=2*, extra=3*, stale=4*}
 *
 * The server may put several frames in one WebSocket message: they are
 * concatenated, which in protobuf is one message whose fields are the frames,
 * in order (`decodeServerFrames`). It does so with what it has to say to a
 * device at the same moment (the answers and envelopes of one commit), which
 * saves a WebSocket message each. A client sends one frame per message.
 *
 * A send names every device of every destination account, each with the
 * registration id the sender believes it has, so that the server can refuse a
 * send that would skip a device. A multicast does the same for one body that
 * every named device receives unchanged (a group message: one sender-key
 * ciphertext for all members); the server checks and stores it as the send of
 * that body to each device. Bodies are opaque ciphertext to the server.
 * Decoders take hostile bytes and throw only `ProtocolError('INVALID_ENCODING')`.
 */
import { ProtocolError } from '../errors.js';
import {
  MAX_ACKS_PER_FRAME,
  MAX_DEVICE_ID,
  MAX_DEVICES_PER_ACCOUNT,
  MAX_MULTICAST_RECIPIENTS,
  MAX_REGISTRATION_ID,
  MAX_SEND_DESTINATIONS,
} from '../limits.js';
import {
  ProtoWriter,
  readProto,
  readProtoFields,
  requiredBytes,
  requiredUint32,
  requiredUint64,
  type ProtoValue,
} from '../codec/protobuf.js';
import { fromUtf8, utf8 } from './text.js';
import { isCanonicalUsername } from './username.js';

/** One device's copy of a message. */
export interface OutgoingMessage {
  readonly deviceId: number;
  readonly registrationId: number;
  /** The envelope type (the protocol's message type); 1–255, opaque to the server. */
  readonly type: number;
  readonly body: Uint8Array;
}

/** Every device of one account, each with its copy. */
export interface Destination {
  readonly username: string;
  readonly messages: readonly OutgoingMessage[];
}

/** One account of a multicast: every device that gets the body, each with the registration id the sender believes it has. */
export interface MulticastRecipient {
  readonly username: string;
  readonly devices: readonly { readonly deviceId: number; readonly registrationId: number }[];
}

export type ClientFrame =
  | { readonly kind: 'auth'; readonly token: Uint8Array }
  | { readonly kind: 'send'; readonly requestId: number; readonly destinations: readonly Destination[] }
  | { readonly kind: 'ack'; readonly ids: readonly number[] }
  | {
      readonly kind: 'multicast';
      readonly requestId: number;
      /** The envelope type every device gets; 1–255, opaque to the server. */
      readonly type: number;
      /** The one body every device gets. */
      readonly body: Uint8Array;
      readonly recipients: readonly MulticastRecipient[];
    };

/** A stored message as delivered to its device. */
export interface Envelope {
  /** Server-assigned; increases along a mailbox. */
  readonly id: number;
  /** When the server stored it, in milliseconds since the epoch. */
  readonly timestamp: number;
  readonly source: string;
  readonly sourceDevice: number;
  readonly type: number;
  readonly body: Uint8Array;
}

/** Why a send named the wrong devices of one account. */
export interface DeviceMismatch {
  readonly username: string;
  /** Devices the account has that the send left out. */
  readonly missing: readonly number[];
  /** Devices the send named that the account does not have. */
  readonly extra: readonly number[];
  /** Devices whose registration id changed: the sender's session with them is stale. */
  readonly stale: readonly number[];
}

/** Why a send was refused; nothing of a refused send was stored. */
export type SendRefusalCode =
  | 'DEVICE_MISMATCH'
  | 'UNKNOWN_RECIPIENT'
  | 'MESSAGE_TOO_LARGE'
  | 'MAILBOX_FULL'
  | 'RATE_LIMITED'
  | 'UNAVAILABLE';

export type ServerFrame =
  | { readonly kind: 'ready' }
  | { readonly kind: 'sent'; readonly requestId: number; readonly timestamp: number }
  | {
      readonly kind: 'refused';
      readonly requestId: number;
      readonly code: SendRefusalCode;
      readonly message: string;
      readonly mismatches: readonly DeviceMismatch[];
    }
  | { readonly kind: 'envelope'; readonly envelope: Envelope }
  | { readonly kind: 'drained' };

const REFUSAL_CODES: ReadonlySet<string> = new Set<SendRefusalCode>([
  'DEVICE_MISMATCH',
  'UNKNOWN_RECIPIENT',
  'MESSAGE_TOO_LARGE',
  'MAILBOX_FULL',
  'RATE_LIMITED',
  'UNAVAILABLE',
]);

const invalid = (message: string) => new ProtocolError('INVALID_ENCODING', message);
const EMPTY = new Uint8Array(0);

const frame = (field: number, body: Uint8Array) => new ProtoWriter().bytes(field, body).finish();

/** Encodes a frame a client sends. @throws RangeError for values out of range. */
export function encodeClientFrame(value: ClientFrame): Uint8Array {
  switch (value.kind) {
    case 'auth':
      return frame(1, new ProtoWriter().bytes(1, value.token).finish());
    case 'send': {
      const writer = new ProtoWriter().uint32(1, value.requestId);
      for (const destination of value.destinations) {
        const inner = new ProtoWriter().bytes(1, utf8(destination.username));
        for (const m of destination.messages) {
          inner.bytes(
            2,
            new ProtoWriter().uint32(1, m.deviceId).uint32(2, m.registrationId).uint32(3, m.type).bytes(4, m.body).finish(),
          );
        }
        writer.bytes(2, inner.finish());
      }
      return frame(2, writer.finish());
    }
    case 'ack': {
      const writer = new ProtoWriter();
      for (const id of value.ids) writer.uint64(1, id);
      return frame(3, writer.finish());
    }
    case 'multicast': {
      const writer = new ProtoWriter().uint32(1, value.requestId).uint32(2, value.type).bytes(3, value.body);
      for (const recipient of value.recipients) {
        const inner = new ProtoWriter().bytes(1, utf8(recipient.username));
        for (const d of recipient.devices) inner.bytes(2, new ProtoWriter().uint32(1, d.deviceId).uint32(2, d.registrationId).finish());
        writer.bytes(4, inner.finish());
      }
      return frame(4, writer.finish());
    }
  }
}

/** Encodes a frame the server sends. @throws RangeError for values out of range. */
export function encodeServerFrame(value: ServerFrame): Uint8Array {
  switch (value.kind) {
    case 'ready':
      return frame(1, EMPTY);
    case 'sent':
      return frame(2, new ProtoWriter().uint32(1, value.requestId).uint64(2, value.timestamp).finish());
    case 'refused': {
      const writer = new ProtoWriter()
        .uint32(1, value.requestId)
        .bytes(2, utf8(value.code))
        .bytes(3, utf8(value.message));
      for (const m of value.mismatches) {
        const inner = new ProtoWriter().bytes(1, utf8(m.username));
        for (const id of m.missing) inner.uint32(2, id);
        for (const id of m.extra) inner.uint32(3, id);
        for (const id of m.stale) inner.uint32(4, id);
        writer.bytes(4, inner.finish());
      }
      return frame(3, writer.finish());
    }
    case 'envelope': {
      const e = value.envelope;
      return frame(
        4,
        new ProtoWriter()
          .uint64(1, e.id)
          .uint64(2, e.timestamp)
          .bytes(3, utf8(e.source))
          .uint32(4, e.sourceDevice)
          .uint32(5, e.type)
          .bytes(6, e.body)
          .finish(),
      );
    }
    case 'drained':
      return frame(5, EMPTY);
  }
}

/** The single field of a frame: its kind's number and its body. */
function unwrap(bytes: Uint8Array): [number, Uint8Array] {
  const fields = readProtoFields(bytes);
  if (fields.length !== 1) throw invalid(`a frame has exactly one field, not ${fields.length}`);
  return frameField(fields[0]!);
}

function frameField([field, value]: [number, ProtoValue]): [number, Uint8Array] {
  if (!(value instanceof Uint8Array)) throw invalid('a frame body is a message');
  return [field, value];
}

/** The values of a repeated message field, from a message's fields (walked once by the caller). */
function messages(fields: [number, ProtoValue][], field: number, name: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const [number, value] of fields) {
    if (number !== field) continue;
    if (!(value instanceof Uint8Array)) throw invalid(`${name} is not a message`);
    out.push(value);
  }
  return out;
}

function deviceIds(fields: [number, ProtoValue][], field: number, name: string): number[] {
  return numbers(fields, field, name, MAX_DEVICES_PER_ACCOUNT).map((id) => inRange(id, 1, MAX_DEVICE_ID, name));
}

function numbers(fields: [number, ProtoValue][], field: number, name: string, limit: number): number[] {
  const out: number[] = [];
  for (const [number, value] of fields) {
    if (number !== field) continue;
    if (typeof value !== 'number') throw invalid(`${name} is not a varint`);
    if (out.length === limit) throw invalid(`more than ${limit} ${name} values`);
    out.push(value);
  }
  return out;
}

function username(bytes: Uint8Array): string {
  const name = fromUtf8(bytes, 'username');
  if (!isCanonicalUsername(name)) throw invalid('username is not canonical');
  return name;
}

function inRange(value: number, min: number, max: number, name: string): number {
  if (value < min || value > max) throw invalid(`${name} ${value} is outside ${min}–${max}`);
  return value;
}

const envelopeType = (fields: Map<number, ProtoValue>, field: number) => inRange(requiredUint32(fields, field, 'type'), 1, 255, 'type');

/** Field 1 of a send's message and of a multicast's device. */
const deviceIdOf = (fields: Map<number, ProtoValue>) => inRange(requiredUint32(fields, 1, 'device id'), 1, MAX_DEVICE_ID, 'device id');
/** Field 2 of a send's message and of a multicast's device. */
const registrationIdOf = (fields: Map<number, ProtoValue>) =>
  inRange(requiredUint32(fields, 2, 'registration id'), 1, MAX_REGISTRATION_ID, 'registration id');

function decodeMessage(bytes: Uint8Array): OutgoingMessage {
  const fields = readProto(bytes);
  return {
    deviceId: deviceIdOf(fields),
    registrationId: registrationIdOf(fields),
    type: envelopeType(fields, 3),
    body: requiredBytes(fields, 4, 'body').slice(),
  };
}

function decodeDevice(bytes: Uint8Array): MulticastRecipient['devices'][number] {
  const fields = readProto(bytes);
  return { deviceId: deviceIdOf(fields), registrationId: registrationIdOf(fields) };
}

/**
 * One account's part of a send or multicast: its username (field 1) and its
 * 1–MAX_DEVICES_PER_ACCOUNT devices (field 2, decoded by `decode`), each named once.
 */
function decodeAccount<T extends { readonly deviceId: number }>(bytes: Uint8Array, what: string, decode: (bytes: Uint8Array) => T): [string, T[]] {
  const all = readProtoFields(bytes);
  const encoded = messages(all, 2, what);
  if (encoded.length === 0 || encoded.length > MAX_DEVICES_PER_ACCOUNT) {
    throw invalid(`1–${MAX_DEVICES_PER_ACCOUNT} ${what}s per account`);
  }
  const decoded = encoded.map(decode);
  if (new Set(decoded.map((m) => m.deviceId)).size !== decoded.length) throw invalid('a device is named twice');
  return [username(requiredBytes(new Map(all), 1, 'username')), decoded]; // the map: the last value of each field, as readProto gives
}

/** The accounts of a send or multicast, at `field` of its fields: 1–`limit` of them, each named once. */
function decodeAccounts<T extends { readonly username: string }>(
  all: [number, ProtoValue][],
  field: number,
  what: string,
  limit: number,
  decode: (bytes: Uint8Array) => T,
): T[] {
  const encoded = messages(all, field, what);
  if (encoded.length === 0 || encoded.length > limit) throw invalid(`1–${limit} ${what}s per frame`);
  const accounts = encoded.map(decode);
  if (new Set(accounts.map((a) => a.username)).size !== accounts.length) throw invalid('an account is named twice');
  return accounts;
}

function decodeDestination(bytes: Uint8Array): Destination {
  const [name, decoded] = decodeAccount(bytes, 'message', decodeMessage);
  return { username: name, messages: decoded };
}

function decodeRecipient(bytes: Uint8Array): MulticastRecipient {
  const [name, devices] = decodeAccount(bytes, 'device', decodeDevice);
  return { username: name, devices };
}

/**
 * Decodes and checks a frame from a client.
 * @throws ProtocolError `INVALID_ENCODING`, nothing else.
 */
export function decodeClientFrame(bytes: Uint8Array): ClientFrame {
  const [kind, body] = unwrap(bytes);
  switch (kind) {
    case 1:
      return { kind: 'auth', token: requiredBytes(readProto(body), 1, 'token').slice() };
    case 2: {
      const all = readProtoFields(body);
      const destinations = decodeAccounts(all, 2, 'destination', MAX_SEND_DESTINATIONS, decodeDestination);
      return { kind: 'send', requestId: requiredUint32(new Map(all), 1, 'request id'), destinations };
    }
    case 3: {
      const ids = numbers(readProtoFields(body), 1, 'ack', MAX_ACKS_PER_FRAME);
      if (ids.length === 0) throw invalid('an ack names at least one envelope');
      return { kind: 'ack', ids };
    }
    case 4: {
      const all = readProtoFields(body);
      const recipients = decodeAccounts(all, 4, 'recipient', MAX_MULTICAST_RECIPIENTS, decodeRecipient);
      const fields = new Map(all);
      return {
        kind: 'multicast',
        requestId: requiredUint32(fields, 1, 'request id'),
        type: envelopeType(fields, 2),
        body: requiredBytes(fields, 3, 'body').slice(),
        recipients,
      };
    }
    default:
      throw invalid(`unknown client frame ${kind}`);
  }
}

/**
 * Decodes a frame from the server.
 * @throws ProtocolError `INVALID_ENCODING`, nothing else.
 */
export function decodeServerFrame(bytes: Uint8Array): ServerFrame {
  return serverFrame(unwrap(bytes));
}

/**
 * Decodes a WebSocket message from the server: one or more frames, in order.
 * @throws ProtocolError `INVALID_ENCODING`, nothing else.
 */
export function decodeServerFrames(bytes: Uint8Array): ServerFrame[] {
  const fields = readProtoFields(bytes);
  if (fields.length === 0) throw invalid('a message holds at least one frame');
  return fields.map((field) => serverFrame(frameField(field)));
}

function serverFrame([kind, body]: [number, Uint8Array]): ServerFrame {
  switch (kind) {
    case 1:
      return { kind: 'ready' };
    case 2: {
      const fields = readProto(body);
      return {
        kind: 'sent',
        requestId: requiredUint32(fields, 1, 'request id'),
        timestamp: requiredUint64(fields, 2, 'timestamp'),
      };
    }
    case 3: {
      const fields = readProto(body);
      const code = fromUtf8(requiredBytes(fields, 2, 'code'), 'code');
      if (!REFUSAL_CODES.has(code)) throw invalid(`unknown refusal code ${code}`);
      const mismatches = messages(readProtoFields(body), 4, 'mismatch').map((bytes): DeviceMismatch => {
        const all = readProtoFields(bytes);
        return {
          username: username(requiredBytes(readProto(bytes), 1, 'username')),
          missing: deviceIds(all, 2, 'missing'),
          extra: deviceIds(all, 3, 'extra'),
          stale: deviceIds(all, 4, 'stale'),
        };
      });
      return {
        kind: 'refused',
        requestId: requiredUint32(fields, 1, 'request id'),
        code: code as SendRefusalCode,
        message: fromUtf8(requiredBytes(fields, 3, 'message'), 'message'),
        mismatches,
      };
    }
    case 4: {
      const fields = readProto(body);
      return {
        kind: 'envelope',
        envelope: {
          id: requiredUint64(fields, 1, 'id'),
          timestamp: requiredUint64(fields, 2, 'timestamp'),
          source: username(requiredBytes(fields, 3, 'source')),
          sourceDevice: inRange(requiredUint32(fields, 4, 'source device'), 1, MAX_DEVICE_ID, 'source device'),
          type: inRange(requiredUint32(fields, 5, 'type'), 1, 255, 'type'),
          body: requiredBytes(fields, 6, 'body').slice(),
        },
      };
    }
    case 5:
      return { kind: 'drained' };
    default:
      throw invalid(`unknown server frame ${kind}`);
  }
}
