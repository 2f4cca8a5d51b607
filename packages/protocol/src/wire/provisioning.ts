/**
 * The frames of the provisioning relay (`/v1/provisioning`), over which a new
 * device and one already linked talk end to end before the new one has an
 * account: binary, one protobuf message per frame and per WebSocket message,
 * whose single set field says what kind of frame it is.
 *
 *   ProvisioningClientFrame = create=1 {} | join=2 {address=1} | message=3 {body=1}
 *   ProvisioningServerFrame = address=1 {address=1} | joined=2 {} | message=3 {body=1}
 *
 * One party sends `create` and is told the channel's `address` (16 random
 * bytes); the other sends `join` with that address; both are told `joined`,
 * and from then on each `message` one sends reaches the other unchanged, in
 * order. Bodies are opaque to the server: the two devices encrypt them end to
 * end, which is no business of this module.
 *
 * A `message` body is 1–MAX_PROVISIONING_MESSAGE_BYTES bytes in both
 * directions (the server relays only what it accepted). Decoders skip unknown
 * fields inside a frame, take hostile bytes and throw only
 * `ProtocolError('INVALID_ENCODING')`.
 */
import { checkBytes } from '@parley/crypto';

import { ProtocolError } from '../errors.js';
import { MAX_PROVISIONING_MESSAGE_BYTES } from '../limits.js';
import { ProtoWriter, readProto, readProtoFields, requiredBytes } from '../codec/protobuf.js';

/** Bytes in a provisioning channel's address. */
export const PROVISIONING_ADDRESS_LENGTH = 16;

export type ProvisioningClientFrame =
  /** Open a new channel; the server answers `address`. */
  | { readonly kind: 'create' }
  /** Become the second party of the channel at `address`. */
  | { readonly kind: 'join'; readonly address: Uint8Array }
  /** For the other party, once `joined`. */
  | { readonly kind: 'message'; readonly body: Uint8Array };

export type ProvisioningServerFrame =
  /** The address of the channel this socket created, for the other party to join. */
  | { readonly kind: 'address'; readonly address: Uint8Array }
  /** Both parties are there: messages flow from now on. */
  | { readonly kind: 'joined' }
  /** A message from the other party, as it sent it. */
  | { readonly kind: 'message'; readonly body: Uint8Array };

const invalid = (message: string) => new ProtocolError('INVALID_ENCODING', message);
const EMPTY = new Uint8Array(0);

const frame = (field: number, body: Uint8Array) => new ProtoWriter().bytes(field, body).finish();

/** @throws TypeError or RangeError unless `address` is PROVISIONING_ADDRESS_LENGTH bytes. */
function addressFrame(field: number, address: Uint8Array): Uint8Array {
  checkBytes(address, 'address', PROVISIONING_ADDRESS_LENGTH);
  return frame(field, new ProtoWriter().bytes(1, address).finish());
}

/** @throws TypeError or RangeError unless `body` is 1–MAX_PROVISIONING_MESSAGE_BYTES bytes. */
function messageFrame(body: Uint8Array): Uint8Array {
  checkBytes(body, 'body');
  if (body.length === 0 || body.length > MAX_PROVISIONING_MESSAGE_BYTES) {
    throw new RangeError(`body must be 1–${MAX_PROVISIONING_MESSAGE_BYTES} bytes, got ${body.length}`);
  }
  return frame(3, new ProtoWriter().bytes(1, body).finish());
}

/**
 * Encodes a frame a client sends.
 * @throws TypeError or RangeError for an address that is not 16 bytes, or a body outside 1–MAX_PROVISIONING_MESSAGE_BYTES.
 */
export function encodeProvisioningClientFrame(value: ProvisioningClientFrame): Uint8Array {
  switch (value.kind) {
    case 'create':
      return frame(1, EMPTY);
    case 'join':
      return addressFrame(2, value.address);
    case 'message':
      return messageFrame(value.body);
  }
}

/**
 * Encodes a frame the server sends.
 * @throws TypeError or RangeError for an address that is not 16 bytes, or a body outside 1–MAX_PROVISIONING_MESSAGE_BYTES.
 */
export function encodeProvisioningServerFrame(value: ProvisioningServerFrame): Uint8Array {
  switch (value.kind) {
    case 'address':
      return addressFrame(1, value.address);
    case 'joined':
      return frame(2, EMPTY);
    case 'message':
      return messageFrame(value.body);
  }
}

/** The single field of a frame: its kind's number and its body. */
function unwrap(bytes: Uint8Array): [number, Uint8Array] {
  const fields = readProtoFields(bytes);
  if (fields.length !== 1) throw invalid(`a frame has exactly one field, not ${fields.length}`);
  const [field, value] = fields[0]!;
  if (!(value instanceof Uint8Array)) throw invalid('a frame body is a message');
  return [field, value];
}

/** An empty frame body: any fields it has are unknown, and skipped, but it must parse. */
function empty(body: Uint8Array): void {
  readProtoFields(body);
}

function address(body: Uint8Array): Uint8Array {
  const value = requiredBytes(readProto(body), 1, 'address');
  if (value.length !== PROVISIONING_ADDRESS_LENGTH) {
    throw invalid(`an address is ${PROVISIONING_ADDRESS_LENGTH} bytes, not ${value.length}`);
  }
  return value.slice();
}

function messageBody(body: Uint8Array): Uint8Array {
  const value = requiredBytes(readProto(body), 1, 'body');
  if (value.length === 0 || value.length > MAX_PROVISIONING_MESSAGE_BYTES) {
    throw invalid(`a message body is 1–${MAX_PROVISIONING_MESSAGE_BYTES} bytes, not ${value.length}`);
  }
  return value.slice();
}

/**
 * Decodes and checks a provisioning frame from a client.
 * @throws ProtocolError `INVALID_ENCODING`, nothing else.
 */
export function decodeProvisioningClientFrame(bytes: Uint8Array): ProvisioningClientFrame {
  const [kind, body] = unwrap(bytes);
  switch (kind) {
    case 1:
      empty(body);
      return { kind: 'create' };
    case 2:
      return { kind: 'join', address: address(body) };
    case 3:
      return { kind: 'message', body: messageBody(body) };
    default:
      throw invalid(`unknown provisioning client frame ${kind}`);
  }
}

/**
 * Decodes and checks a provisioning frame from the server.
 * @throws ProtocolError `INVALID_ENCODING`, nothing else.
 */
export function decodeProvisioningServerFrame(bytes: Uint8Array): ProvisioningServerFrame {
  const [kind, body] = unwrap(bytes);
  switch (kind) {
    case 1:
      return { kind: 'address', address: address(body) };
    case 2:
      empty(body);
      return { kind: 'joined' };
    case 3:
      return { kind: 'message', body: messageBody(body) };
    default:
      throw invalid(`unknown provisioning server frame ${kind}`);
  }
}
