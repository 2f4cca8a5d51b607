/**
 * The small part of Protocol Buffers that Signal's messages and records use:
 * unsigned varints (wire type 0), fixed64 (wire type 1) and length-delimited
 * bytes (wire type 2). Writers emit fields in the order called, which callers keep
 * in tag order as prost does. The reader walks untrusted bytes and throws only
 * `ProtocolError('INVALID_ENCODING')`; unknown fields of wire types 0, 1, 2 and 5
 * are skipped, as proto2 requires, and the deprecated groups (3, 4) are refused.
 */
import { ProtocolError } from '../errors.js';

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_BYTES = 2;
const WIRE_I32 = 5;
const MAX_U32 = 0xffff_ffff;

function invalid(message: string): ProtocolError {
  return new ProtocolError('INVALID_ENCODING', message);
}

/** Bytes of a varint holding `value` (a safe unsigned integer). */
function varintSize(value: number): number {
  let size = 1;
  for (let v = value; v > 0x7f; v = Math.floor(v / 128)) size++;
  return size;
}

/**
 * Builds a message field by field. Fields are recorded (varints as numbers,
 * bytes by reference) and written once, into a buffer of the exact size, by
 * `finish`: no intermediate copies, so a secret passed in is copied only
 * into the result.
 */
export class ProtoWriter {
  /** A number is a varint; bytes are copied as they are. */
  readonly #items: (number | Uint8Array)[] = [];
  #length = 0;

  #varint(value: number): void {
    this.#items.push(value);
    this.#length += varintSize(value);
  }

  #raw(bytes: Uint8Array): void {
    this.#items.push(bytes);
    this.#length += bytes.length;
  }

  /** A uint32 field. */
  uint32(field: number, value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > MAX_U32) throw new RangeError(`field ${field} must be a uint32`);
    this.#varint((field << 3) | WIRE_VARINT);
    this.#varint(value);
    return this;
  }

  /** A uint64 field holding a safe integer (timestamps in milliseconds). */
  uint64(field: number, value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`field ${field} must be a safe unsigned integer`);
    this.#varint((field << 3) | WIRE_VARINT);
    this.#varint(value);
    return this;
  }

  /** A fixed64 field holding a safe integer (libsignal's record timestamps). */
  fixed64(field: number, value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`field ${field} must be a safe unsigned integer`);
    this.#varint((field << 3) | WIRE_I64);
    const bytes = new Uint8Array(8);
    let v = value;
    for (let i = 0; i < 8; i++) {
      bytes[i] = v % 256;
      v = Math.floor(v / 256);
    }
    this.#raw(bytes);
    return this;
  }

  /** A bytes field. */
  bytes(field: number, value: Uint8Array): this {
    this.#varint((field << 3) | WIRE_BYTES);
    this.#varint(value.length);
    this.#raw(value);
    return this;
  }

  /** The encoded message, optionally after a prefix (a version byte, say). */
  finish(prefix?: Uint8Array, extraCapacity = 0): Uint8Array {
    const out = new Uint8Array((prefix?.length ?? 0) + this.#length + extraCapacity);
    let offset = 0;
    if (prefix !== undefined) {
      out.set(prefix, 0);
      offset = prefix.length;
    }
    for (const item of this.#items) {
      if (typeof item === 'number') {
        let v = item;
        while (v > 0x7f) {
          out[offset++] = (v & 0x7f) | 0x80;
          v = Math.floor(v / 128);
        }
        out[offset++] = v;
      } else {
        out.set(item, offset);
        offset += item.length;
      }
    }
    return out;
  }
}

/**
 * A decoded field: a number for a varint, a bigint for a fixed-width value
 * (so that no getter takes one wire type for another), a view of the input for bytes.
 */
export type ProtoValue = number | bigint | Uint8Array;

/**
 * Decodes every field of `bytes` into a map from field number to its last
 * value (proto2's rule for a non-repeated field seen twice).
 */
export function readProto(bytes: Uint8Array): Map<number, ProtoValue> {
  const fields = new Map<number, ProtoValue>();
  for (const [field, value] of readProtoFields(bytes)) fields.set(field, value);
  return fields;
}

/** Every bytes value of a repeated field, in order. */
export function repeatedBytes(bytes: Uint8Array, field: number, name: string): Uint8Array[] {
  const values: Uint8Array[] = [];
  for (const [number, value] of readProtoFields(bytes)) {
    if (number !== field) continue;
    if (!(value instanceof Uint8Array)) throw invalid(`${name} is not bytes`);
    values.push(value);
  }
  return values;
}

/** Decodes every field of `bytes`, in order, as [field number, value] pairs. */
export function readProtoFields(bytes: Uint8Array): [number, ProtoValue][] {
  const fields: [number, ProtoValue][] = [];
  const at = { offset: 0 };
  while (at.offset < bytes.length) {
    const key = readVarint(bytes, at);
    const field = Math.floor(key / 8);
    const wireType = key % 8;
    if (field === 0) throw invalid('field number 0');
    switch (wireType) {
      case WIRE_VARINT:
        fields.push([field, readVarint(bytes, at)]);
        break;
      case WIRE_BYTES: {
        const length = readVarint(bytes, at);
        if (length > bytes.length - at.offset) throw invalid('length-delimited field runs past the end');
        fields.push([field, bytes.subarray(at.offset, at.offset + length)]);
        at.offset += length;
        break;
      }
      case WIRE_I64:
      case WIRE_I32: {
        const width = wireType === WIRE_I64 ? 8 : 4;
        if (width > bytes.length - at.offset) throw invalid('fixed-width field runs past the end');
        let value = 0n;
        for (let i = width - 1; i >= 0; i--) value = value * 256n + BigInt(bytes[at.offset + i] as number);
        at.offset += width;
        fields.push([field, value]);
        break;
      }
      default:
        throw invalid(`unsupported wire type ${wireType}`);
    }
  }
  return fields;
}

/**
 * The varint at `at.offset`, advancing it. A plain function rather than a
 * closure per message: frames are decoded on the server's hot path.
 */
function readVarint(bytes: Uint8Array, at: { offset: number }): number {
  let result = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (at.offset >= bytes.length) throw invalid('truncated varint');
    const byte = bytes[at.offset++] as number;
    result += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) {
      if (result > Number.MAX_SAFE_INTEGER) throw invalid('varint out of range');
      return result;
    }
    scale *= 128;
  }
  throw invalid('varint longer than 10 bytes');
}

/** Reads an optional uint32 field. */
export function optionalUint32(fields: Map<number, ProtoValue>, field: number, name: string): number | undefined {
  const value = fields.get(field);
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || value > MAX_U32) throw invalid(`${name} is not a uint32`);
  return value;
}

/** Reads a required uint64 (varint) field that must be a safe integer. */
export function requiredUint64(fields: Map<number, ProtoValue>, field: number, name: string): number {
  const value = fields.get(field);
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw invalid(`${name} is missing or not a safe integer`);
  return value;
}

/** Reads a required fixed64 field that must be a safe integer. */
export function requiredFixed64(fields: Map<number, ProtoValue>, field: number, name: string): number {
  const value = fields.get(field);
  if (typeof value !== 'bigint' || value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${name} is missing or not a safe fixed64`);
  return Number(value);
}

/** Reads a required uint32 field. */
export function requiredUint32(fields: Map<number, ProtoValue>, field: number, name: string): number {
  const value = optionalUint32(fields, field, name);
  if (value === undefined) throw invalid(`${name} is missing`);
  return value;
}

/** Reads an optional bytes field. */
export function optionalBytes(fields: Map<number, ProtoValue>, field: number, name: string): Uint8Array | undefined {
  const value = fields.get(field);
  if (value === undefined) return undefined;
  if (!(value instanceof Uint8Array)) throw invalid(`${name} is not bytes`);
  return value;
}

/** Reads a required bytes field. */
export function requiredBytes(fields: Map<number, ProtoValue>, field: number, name: string): Uint8Array {
  const value = optionalBytes(fields, field, name);
  if (value === undefined) throw invalid(`${name} is missing`);
  return value;
}
