/**
 * The provisioning relay's frames: every client and server frame kind
 * round-trips; the decoders refuse, with `ProtocolError('INVALID_ENCODING')`
 * and nothing else, every malformed frame (each refusal beside the boundary
 * value that is still accepted); the encoders refuse what the decoders would;
 * and fuzzing (random bytes, mutations of valid frames) shows that whatever
 * the input they either decode to a frame that round-trips or throw that one
 * error.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { ProtoWriter } from '../codec/protobuf.js';
import { MAX_PROVISIONING_FRAME_BYTES, MAX_PROVISIONING_MESSAGE_BYTES } from '../limits.js';
import {
  decodeProvisioningClientFrame,
  decodeProvisioningServerFrame,
  encodeProvisioningClientFrame,
  encodeProvisioningServerFrame,
  PROVISIONING_ADDRESS_LENGTH,
  type ProvisioningClientFrame,
  type ProvisioningServerFrame,
} from './provisioning.js';
import { describeDecoderFuzzing, outcome } from '../../../../testing/fuzz.js';

const bytes = (...values: number[]) => Uint8Array.from(values);
const frame = (field: number, body: Uint8Array) => new ProtoWriter().bytes(field, body).finish();
const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const address = (fill = 0xa5, length = PROVISIONING_ADDRESS_LENGTH) => new Uint8Array(length).fill(fill);
/** A frame of `kind` whose body holds `value` in field 1, written raw (whatever its length). */
const withBytes = (kind: number, value: Uint8Array) => frame(kind, new ProtoWriter().bytes(1, value).finish());
const EMPTY = new Uint8Array(0);
const LARGEST = new Uint8Array(MAX_PROVISIONING_MESSAGE_BYTES).fill(0x5a);
const TOO_LARGE = new Uint8Array(MAX_PROVISIONING_MESSAGE_BYTES + 1).fill(0x5a);

const EXAMPLE_CLIENT_FRAMES: { readonly [K in ProvisioningClientFrame['kind']]: Extract<ProvisioningClientFrame, { kind: K }>[] } = {
  create: [{ kind: 'create' }],
  join: [
    { kind: 'join', address: address(0x00) },
    { kind: 'join', address: Uint8Array.from({ length: PROVISIONING_ADDRESS_LENGTH }, (_, i) => i * 17) },
  ],
  message: [
    { kind: 'message', body: bytes(0) },
    { kind: 'message', body: bytes(0xde, 0xad, 0xbe, 0xef) },
  ],
};

const EXAMPLE_SERVER_FRAMES: { readonly [K in ProvisioningServerFrame['kind']]: Extract<ProvisioningServerFrame, { kind: K }>[] } = {
  address: [{ kind: 'address', address: address(0xff) }],
  joined: [{ kind: 'joined' }],
  message: [{ kind: 'message', body: bytes(1) }],
};

describe('provisioning frames round-trip', () => {
  it.each(Object.values(EXAMPLE_CLIENT_FRAMES).flat().map((value) => [value.kind, value] as const))('client frame %s', (_, value) => {
    const encoded = encodeProvisioningClientFrame(value);
    const decoded = decodeProvisioningClientFrame(encoded);
    expect(decoded).toEqual(value);
    expect(encodeProvisioningClientFrame(decoded)).toEqual(encoded);
  });

  it.each(Object.values(EXAMPLE_SERVER_FRAMES).flat().map((value) => [value.kind, value] as const))('server frame %s', (_, value) => {
    const encoded = encodeProvisioningServerFrame(value);
    const decoded = decodeProvisioningServerFrame(encoded);
    expect(decoded).toEqual(value);
    expect(encodeProvisioningServerFrame(decoded)).toEqual(encoded);
  });

  it('has the documented bytes for the empty frames', () => {
    expect(encodeProvisioningClientFrame({ kind: 'create' })).toEqual(bytes(0x0a, 0x00));
    expect(encodeProvisioningServerFrame({ kind: 'joined' })).toEqual(bytes(0x12, 0x00));
  });

  it('client and server message frames are the same bytes', () => {
    const body = bytes(1, 2, 3);
    expect(encodeProvisioningServerFrame({ kind: 'message', body })).toEqual(encodeProvisioningClientFrame({ kind: 'message', body }));
  });

  it('round-trips the largest body, within MAX_PROVISIONING_FRAME_BYTES', () => {
    // Compared with Buffer.equals: a deep equality over 4 MiB, element by element, takes half a minute.
    const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
    const client = encodeProvisioningClientFrame({ kind: 'message', body: LARGEST });
    const server = encodeProvisioningServerFrame({ kind: 'message', body: LARGEST });
    expect(client.length).toBeLessThanOrEqual(MAX_PROVISIONING_FRAME_BYTES);
    const fromClient = decodeProvisioningClientFrame(client);
    const fromServer = decodeProvisioningServerFrame(server);
    expect(fromClient.kind === 'message' && same(fromClient.body, LARGEST)).toBe(true);
    expect(fromServer.kind === 'message' && same(fromServer.body, LARGEST)).toBe(true);
  });

  it('copies addresses and bodies out of the input buffer', () => {
    const join = encodeProvisioningClientFrame(EXAMPLE_CLIENT_FRAMES.join[1]!);
    const message = encodeProvisioningServerFrame(EXAMPLE_SERVER_FRAMES.message[0]!);
    const decoded = [decodeProvisioningClientFrame(join), decodeProvisioningServerFrame(message)];
    join.fill(0);
    message.fill(0);
    expect(decoded).toEqual([EXAMPLE_CLIENT_FRAMES.join[1], EXAMPLE_SERVER_FRAMES.message[0]]);
  });

  it('skips unknown fields inside a frame', () => {
    const extra = new ProtoWriter().uint32(7, 9).finish();
    expect(decodeProvisioningClientFrame(frame(1, extra))).toEqual({ kind: 'create' });
    expect(decodeProvisioningClientFrame(frame(2, concat(extra, new ProtoWriter().bytes(1, address()).finish())))).toEqual({
      kind: 'join',
      address: address(),
    });
    expect(decodeProvisioningServerFrame(frame(2, extra))).toEqual({ kind: 'joined' });
  });
});

describe('provisioning encoders refuse what the decoders would', () => {
  it.each([
    ['a 15-byte address', () => encodeProvisioningClientFrame({ kind: 'join', address: address(1, 15) })],
    ['a 17-byte address', () => encodeProvisioningServerFrame({ kind: 'address', address: address(1, 17) })],
    ['an empty body', () => encodeProvisioningClientFrame({ kind: 'message', body: EMPTY })],
    ['a body over MAX_PROVISIONING_MESSAGE_BYTES', () => encodeProvisioningServerFrame({ kind: 'message', body: TOO_LARGE })],
  ])('%s: RangeError', (_, encode) => {
    expect(encode).toThrow(RangeError);
  });

  it('a body that is not bytes: TypeError', () => {
    expect(() => encodeProvisioningClientFrame({ kind: 'message', body: [1, 2] as unknown as Uint8Array })).toThrow(TypeError);
  });
});

/** [what is wrong, a frame just inside the rule, the frame that breaks it]. */
type Case = readonly [string, Uint8Array, Uint8Array];

/** Refusals that hold alike for client and server frames (kind numbers as given). */
const commonCases = (addressKind: number, emptyKind: number, unknownKind: number): Case[] => [
  ['empty input', frame(emptyKind, EMPTY), EMPTY],
  ['two frames in one message', frame(emptyKind, EMPTY), concat(frame(emptyKind, EMPTY), frame(emptyKind, EMPTY))],
  ['a frame whose body is a varint', frame(emptyKind, EMPTY), new ProtoWriter().uint32(emptyKind, 0).finish()],
  ['an unknown kind', frame(emptyKind, EMPTY), frame(unknownKind, EMPTY)],
  ['an unknown kind (2^28)', frame(emptyKind, EMPTY), frame(2 ** 28, EMPTY)],
  ['an empty frame whose body does not parse', frame(emptyKind, bytes(0x08, 0x01)), frame(emptyKind, bytes(0x08))],
  ['a truncated frame', withBytes(addressKind, address()), withBytes(addressKind, address()).subarray(0, 10)],
  ['an address of 15 bytes', withBytes(addressKind, address(1, 16)), withBytes(addressKind, address(1, 15))],
  ['an address of 17 bytes', withBytes(addressKind, address(1, 16)), withBytes(addressKind, address(1, 17))],
  ['an empty address', withBytes(addressKind, address(1, 16)), withBytes(addressKind, EMPTY)],
  ['a frame without its address', withBytes(addressKind, address()), frame(addressKind, EMPTY)],
  ['an address that is a varint', withBytes(addressKind, address()), frame(addressKind, new ProtoWriter().uint32(1, 16).finish())],
  ['an empty message body', withBytes(3, bytes(0)), withBytes(3, EMPTY)],
  ['a message without a body', withBytes(3, bytes(1)), frame(3, EMPTY)],
  ['a message body that is a varint', withBytes(3, bytes(1)), frame(3, new ProtoWriter().uint32(1, 1).finish())],
  ['a message body of MAX_PROVISIONING_MESSAGE_BYTES + 1', withBytes(3, LARGEST), withBytes(3, TOO_LARGE)],
];

const clientCases: Case[] = commonCases(2, 1, 4);
const serverCases: Case[] = commonCases(1, 2, 4);

describe('decodeProvisioningClientFrame refuses with INVALID_ENCODING', () => {
  it.each(clientCases)('%s', (_, accepted, refused) => {
    expect(outcome(() => decodeProvisioningClientFrame(accepted))).toBe('decoded');
    expect(outcome(() => decodeProvisioningClientFrame(refused))).toBe('INVALID_ENCODING');
  });
});

describe('decodeProvisioningServerFrame refuses with INVALID_ENCODING', () => {
  it.each(serverCases)('%s', (_, accepted, refused) => {
    expect(outcome(() => decodeProvisioningServerFrame(accepted))).toBe('decoded');
    expect(outcome(() => decodeProvisioningServerFrame(refused))).toBe('INVALID_ENCODING');
  });
});

const addressArb = fc.uint8Array({ minLength: PROVISIONING_ADDRESS_LENGTH, maxLength: PROVISIONING_ADDRESS_LENGTH });
const bodyArb = fc.uint8Array({ minLength: 1, maxLength: 48 });
const clientFrameArb: fc.Arbitrary<ProvisioningClientFrame> = fc.oneof(
  fc.constant({ kind: 'create' as const }),
  fc.record({ kind: fc.constant('join' as const), address: addressArb }),
  fc.record({ kind: fc.constant('message' as const), body: bodyArb }),
);
const serverFrameArb: fc.Arbitrary<ProvisioningServerFrame> = fc.oneof(
  fc.record({ kind: fc.constant('address' as const), address: addressArb }),
  fc.constant({ kind: 'joined' as const }),
  fc.record({ kind: fc.constant('message' as const), body: bodyArb }),
);

describeDecoderFuzzing('provisioning frame fuzzing', {
  client: { valid: clientFrameArb, encode: encodeProvisioningClientFrame, decode: decodeProvisioningClientFrame },
  server: { valid: serverFrameArb, encode: encodeProvisioningServerFrame, decode: decodeProvisioningServerFrame },
});
