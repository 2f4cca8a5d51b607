/** UTF-8 for wire strings: decoding refuses malformed bytes instead of replacing them. */
import { ProtocolError } from '../errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** @throws ProtocolError `INVALID_ENCODING` for bytes that are not UTF-8. */
export function fromUtf8(bytes: Uint8Array, name: string): string {
  try {
    return decoder.decode(bytes);
  } catch (cause) {
    throw new ProtocolError('INVALID_ENCODING', `${name} is not UTF-8`, {}, { cause });
  }
}
