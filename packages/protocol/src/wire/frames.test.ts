/**
 * The WebSocket frames: every client and server frame kind round-trips; the
 * decoders refuse, with `ProtocolError('INVALID_ENCODING')` and nothing else,
 * every malformed frame (each refusal beside the boundary value that is still
 * accepted); and fuzzing (random bytes, mutations of valid frames) shows that
 * whatever the input they either decode to a frame that round-trips or throw
 * that one error.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { ProtoWriter } from '../codec/protobuf.js';
import {
  MAX_ACKS_PER_FRAME,
  MAX_DEVICE_ID,
  MAX_DEVICES_PER_ACCOUNT,
  MAX_MULTICAST_RECIPIENTS,
  MAX_REGISTRATION_ID,
  MAX_SEND_DESTINATIONS,
} from '../limits.js';
import {
  decodeClientFrame,
  decodeServerFrame,
  decodeServerFrames,
  encodeClientFrame,
  encodeServerFrame,
  type ClientFrame,
  type Destination,
  type MulticastRecipient,
  type OutgoingMessage,
  type SendRefusalCode,
  type ServerFrame,
} from './frames.js';
import { describeDecoderFuzzing, outcome } from '../../../../testing/fuzz.js';

const bytes = (...values: number[]) => Uint8Array.from(values);
const utf8 = (s: string) => new TextEncoder().encode(s);
const frame = (field: number, body: Uint8Array) => new ProtoWriter().bytes(field, body).finish();
const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

const message = (overrides: Partial<OutgoingMessage> = {}): OutgoingMessage => ({
  deviceId: 1,
  registrationId: 42,
  type: 3,
  body: bytes(1, 2, 3),
  ...overrides,
});
const destination = (username: string, messages: OutgoingMessage[] = [message()]): Destination => ({ username, messages });
const send = (...destinations: Destination[]) => encodeClientFrame({ kind: 'send', requestId: 7, destinations });
const ack = (ids: number[]) => encodeClientFrame({ kind: 'ack', ids });
const range = (n: number, from = 1) => Array.from({ length: n }, (_, i) => from + i);

const varint = (v: bigint): number[] => (v < 0x80n ? [Number(v)] : [Number(v & 0x7fn) | 0x80, ...varint(v >> 7n)]);
/** A varint field holding any value, even one the writer refuses. */
const rawVarint = (field: number, value: bigint) => Uint8Array.from([...varint(BigInt(field) << 3n), ...varint(value)]);

/** A destination written field by field, for what the encoder would never write. */
const rawDestination = (username: Uint8Array, ...messages: Uint8Array[]) => {
  const writer = new ProtoWriter().bytes(1, username);
  for (const m of messages) writer.bytes(2, m);
  return writer.finish();
};
const rawMessage = (fields: { deviceId?: number; registrationId?: number; type?: number; body?: Uint8Array }) => {
  const writer = new ProtoWriter();
  if (fields.deviceId !== undefined) writer.uint32(1, fields.deviceId);
  if (fields.registrationId !== undefined) writer.uint32(2, fields.registrationId);
  if (fields.type !== undefined) writer.uint32(3, fields.type);
  if (fields.body !== undefined) writer.bytes(4, fields.body);
  return writer.finish();
};
/** A raw send frame's destination 'alice' with one message. */
const toAlice = (fields: Parameters<typeof rawMessage>[0]) => rawDestination(utf8('alice'), rawMessage(fields));
const FIELDS = { deviceId: 1, registrationId: 1, type: 1, body: new Uint8Array(0) };
type Field = keyof typeof FIELDS;
/** A message's fields, but for those `left` out. */
const fieldsWithout = (...left: Field[]): Partial<typeof FIELDS> =>
  Object.fromEntries(Object.entries(FIELDS).filter(([name]) => !left.includes(name as Field)));
/** A raw send of one message to 'alice', with the given fields left out. */
const sendWithout = (...left: Field[]) => rawSend(1, toAlice(fieldsWithout(...left)));
/** A send of one message to 'alice'. */
const sendOne = (overrides: Partial<OutgoingMessage>) => send(destination('alice', [message(overrides)]));
const rawSend = (requestId: number | undefined, ...destinations: Uint8Array[]) => {
  const writer = new ProtoWriter();
  if (requestId !== undefined) writer.uint32(1, requestId);
  for (const d of destinations) writer.bytes(2, d);
  return frame(2, writer.finish());
};

type NamedDevice = MulticastRecipient['devices'][number];
const device = (deviceId = 1, registrationId = 42): NamedDevice => ({ deviceId, registrationId });
const recipient = (username: string, devices: NamedDevice[] = [device()]): MulticastRecipient => ({ username, devices });
const multicast = (...recipients: MulticastRecipient[]) =>
  encodeClientFrame({ kind: 'multicast', requestId: 7, type: 3, body: bytes(1, 2, 3), recipients });
/** A multicast to 'alice' with one device. */
const multicastOne = (overrides: Partial<NamedDevice>) => multicast(recipient('alice', [{ ...device(), ...overrides }]));
/** A multicast written field by field: each of the top-level fields can be left out, and recipients are raw. */
const rawMulticast = (fields: { requestId?: number; type?: number; body?: Uint8Array }, ...recipients: Uint8Array[]) => {
  const writer = new ProtoWriter();
  if (fields.requestId !== undefined) writer.uint32(1, fields.requestId);
  if (fields.type !== undefined) writer.uint32(2, fields.type);
  if (fields.body !== undefined) writer.bytes(3, fields.body);
  for (const r of recipients) writer.bytes(4, r);
  return frame(4, writer.finish());
};
const rawDevice = (fields: { deviceId?: number; registrationId?: number }) => {
  const writer = new ProtoWriter();
  if (fields.deviceId !== undefined) writer.uint32(1, fields.deviceId);
  if (fields.registrationId !== undefined) writer.uint32(2, fields.registrationId);
  return writer.finish();
};
/** A raw recipient: the username (unless undefined), then the devices. */
const rawRecipient = (username: Uint8Array | undefined, ...devices: Uint8Array[]) => {
  const writer = new ProtoWriter();
  if (username !== undefined) writer.bytes(1, username);
  for (const d of devices) writer.bytes(2, d);
  return writer.finish();
};
const MULTICAST_FIELDS = { requestId: 1, type: 1, body: new Uint8Array(0) };
/** A raw multicast to 'alice' (device 1), with the given top-level fields left out. */
const multicastWithout = (...left: (keyof typeof MULTICAST_FIELDS)[]) =>
  rawMulticast(
    Object.fromEntries(Object.entries(MULTICAST_FIELDS).filter(([name]) => !left.includes(name as keyof typeof MULTICAST_FIELDS))),
    rawRecipient(utf8('alice'), rawDevice(device())),
  );
/** A multicast's recipient field (4) for 'alice', device 1, as raw bytes to put after the other fields. */
const toAliceDevice1 = new ProtoWriter().bytes(4, rawRecipient(utf8('alice'), rawDevice(device()))).finish();
const multicastOfType = (type: number) => rawMulticast({ requestId: 1, type, body: bytes(1) }, rawRecipient(utf8('alice'), rawDevice(device())));

const EXAMPLE_CLIENT_FRAMES: { readonly [K in ClientFrame['kind']]: Extract<ClientFrame, { kind: K }>[] } = {
  auth: [
    { kind: 'auth', token: bytes(9, 8, 7, 6) },
    { kind: 'auth', token: new Uint8Array(0) },
  ],
  send: [
    {
      kind: 'send',
      requestId: 0xffff_ffff,
      destinations: [
        destination('alice', [
          message({ deviceId: 1, registrationId: 1, type: 1, body: new Uint8Array(0) }),
          message({ deviceId: MAX_DEVICE_ID, registrationId: MAX_REGISTRATION_ID, type: 255, body: new Uint8Array(300).fill(0xaa) }),
        ]),
        destination('bob_2', [message({ deviceId: 1 })]),
      ],
    },
    { kind: 'send', requestId: 0, destinations: [destination('carol', range(MAX_DEVICES_PER_ACCOUNT).map((deviceId) => message({ deviceId })))] },
  ],
  ack: [
    { kind: 'ack', ids: [0, 1, Number.MAX_SAFE_INTEGER] },
    { kind: 'ack', ids: range(MAX_ACKS_PER_FRAME) },
  ],
  multicast: [
    {
      kind: 'multicast',
      requestId: 0xffff_ffff,
      type: 255,
      body: new Uint8Array(300).fill(0xaa),
      recipients: [recipient('alice', [device(1, 1), device(MAX_DEVICE_ID, MAX_REGISTRATION_ID)]), recipient('bob_2')],
    },
    { kind: 'multicast', requestId: 0, type: 1, body: new Uint8Array(0), recipients: [recipient('carol', range(MAX_DEVICES_PER_ACCOUNT).map((id) => device(id)))] },
    { kind: 'multicast', requestId: 9, type: 7, body: bytes(5), recipients: range(MAX_MULTICAST_RECIPIENTS).map((i) => recipient(`member${i}`)) },
  ],
};

const EXAMPLE_SERVER_FRAMES: { readonly [K in ServerFrame['kind']]: Extract<ServerFrame, { kind: K }>[] } = {
  ready: [{ kind: 'ready' }],
  sent: [
    { kind: 'sent', requestId: 7, timestamp: 1_700_000_000_000 },
    { kind: 'sent', requestId: 0xffff_ffff, timestamp: Number.MAX_SAFE_INTEGER },
  ],
  refused: [
    {
      kind: 'refused',
      requestId: 3,
      code: 'DEVICE_MISMATCH',
      message: 'devices changed — ändern',
      mismatches: [
        { username: 'alice', missing: [2, 3], extra: [], stale: [1] },
        { username: 'bob', missing: [], extra: range(MAX_DEVICES_PER_ACCOUNT, 100), stale: [] },
      ],
    },
    { kind: 'refused', requestId: 0, code: 'RATE_LIMITED', message: '', mismatches: [] },
  ],
  envelope: [
    {
      kind: 'envelope',
      envelope: { id: 1, timestamp: 1_700_000_000_000, source: 'alice', sourceDevice: 2, type: 3, body: bytes(0xde, 0xad) },
    },
    {
      kind: 'envelope',
      envelope: { id: Number.MAX_SAFE_INTEGER, timestamp: 0, source: 'z_9', sourceDevice: MAX_DEVICE_ID, type: 255, body: new Uint8Array(0) },
    },
  ],
  drained: [{ kind: 'drained' }],
};

describe('frames round-trip', () => {
  it.each(Object.values(EXAMPLE_CLIENT_FRAMES).flat())('client frame $kind', (value) => {
    const encoded = encodeClientFrame(value);
    const decoded = decodeClientFrame(encoded);
    expect(decoded).toEqual(value);
    expect(encodeClientFrame(decoded)).toEqual(encoded);
  });

  it.each(Object.values(EXAMPLE_SERVER_FRAMES).flat())('server frame $kind', (value) => {
    const encoded = encodeServerFrame(value);
    const decoded = decodeServerFrame(encoded);
    expect(decoded).toEqual(value);
    expect(encodeServerFrame(decoded)).toEqual(encoded);
  });

  it('copies bodies and tokens out of the input buffer', () => {
    const sent = encodeClientFrame({ kind: 'send', requestId: 1, destinations: [destination('alice')] });
    const envelope = encodeServerFrame(EXAMPLE_SERVER_FRAMES.envelope[0]!);
    const token = encodeClientFrame(EXAMPLE_CLIENT_FRAMES.auth[0]!);
    const multicasted = encodeClientFrame(EXAMPLE_CLIENT_FRAMES.multicast[0]!);
    const decoded = [decodeClientFrame(sent), decodeServerFrame(envelope), decodeClientFrame(token), decodeClientFrame(multicasted)];
    for (const buffer of [sent, envelope, token, multicasted]) buffer.fill(0);
    expect(decoded).toEqual([
      { kind: 'send', requestId: 1, destinations: [destination('alice')] },
      EXAMPLE_SERVER_FRAMES.envelope[0],
      EXAMPLE_CLIENT_FRAMES.auth[0],
      EXAMPLE_CLIENT_FRAMES.multicast[0],
    ]);
  });
});

/** [what is wrong, a frame just inside the rule, the frame that breaks it]. */
type Case = readonly [string, Uint8Array, Uint8Array];

const clientCases: Case[] = [
  ['empty input', encodeClientFrame({ kind: 'auth', token: bytes(1) }), new Uint8Array(0)],
  ['two fields', ack([1]), concat(encodeClientFrame({ kind: 'auth', token: bytes(1) }), ack([1]))],
  ['two frames of the same kind', ack([1]), concat(ack([1]), ack([2]))],
  ['a frame whose body is a varint', ack([1]), new ProtoWriter().uint32(3, 1).finish()],
  ['an unknown kind (5)', frame(3, new ProtoWriter().uint64(1, 5).finish()), frame(5, new ProtoWriter().uint64(1, 5).finish())],
  ['an unknown kind (2^28)', frame(1, frame(1, bytes(1))), frame(2 ** 28, frame(1, bytes(1)))],
  ['a truncated frame', frame(1, frame(1, bytes(1, 2))), frame(1, frame(1, bytes(1, 2))).subarray(0, 5)],
  ['an auth without a token', frame(1, frame(1, new Uint8Array(0))), frame(1, new Uint8Array(0))],
  ['a token that is a varint', frame(1, frame(1, bytes(1))), frame(1, new ProtoWriter().uint32(1, 1).finish())],
  ['a send with zero destinations', send(destination('alice')), send()],
  ['a destination with zero messages', send(destination('alice')), send(destination('alice', []))],
  ['a send without a request id', rawSend(0, toAlice(message())), rawSend(undefined, toAlice(message()))],
  ['an upper-case username', send(destination('alice')), send(destination('Alice'))],
  ['a two-letter username', send(destination('ali')), send(destination('al'))],
  ['a username with a leading digit', send(destination('a1ice')), send(destination('1alice'))],
  ['a username with a space', send(destination('alice')), send(destination('alice '))],
  ['a username with a Cyrillic а', send(destination('alice')), send(destination('аlice'))],
  ['a username of 33 letters', send(destination('a'.repeat(32))), send(destination('a'.repeat(33)))],
  ['a username that is not UTF-8', send(destination('alice')), rawSend(1, rawDestination(bytes(0x61, 0xff, 0x62), rawMessage(message())))],
  ['a destination without a username', rawSend(1, toAlice(message())), rawSend(1, new ProtoWriter().bytes(2, rawMessage(message())).finish())],
  ['device id 0', sendOne({ deviceId: 1 }), sendOne({ deviceId: 0 })],
  ['device id MAX_DEVICE_ID + 1', sendOne({ deviceId: MAX_DEVICE_ID }), sendOne({ deviceId: MAX_DEVICE_ID + 1 })],
  ['device id 2^32', sendOne({}), rawSend(1, rawDestination(utf8('alice'), concat(rawVarint(1, 2n ** 32n), rawMessage(fieldsWithout('deviceId')))))],
  ['registration id 0', sendOne({ registrationId: 1 }), sendOne({ registrationId: 0 })],
  ['registration id MAX_REGISTRATION_ID + 1', sendOne({ registrationId: MAX_REGISTRATION_ID }), sendOne({ registrationId: MAX_REGISTRATION_ID + 1 })],
  ['type 0', sendOne({ type: 1 }), sendOne({ type: 0 })],
  ['type 256', sendOne({ type: 255 }), sendOne({ type: 256 })],
  ['a message without a body', sendWithout(), sendWithout('body')],
  ['a message without a device id', sendWithout(), sendWithout('deviceId')],
  ['a message without a registration id', sendWithout(), sendWithout('registrationId')],
  ['a message without a type', sendWithout(), sendWithout('type')],
  [
    'a device named twice in one destination',
    send(destination('alice', [message({ deviceId: 1 }), message({ deviceId: 2 })]), destination('bob', [message({ deviceId: 1 })])),
    send(destination('alice', [message({ deviceId: 1 }), message({ deviceId: 1, registrationId: 7 })])),
  ],
  ['an account named twice', send(destination('alice'), destination('bob')), send(destination('alice'), destination('bob'), destination('alice'))],
  [
    `more than MAX_DEVICES_PER_ACCOUNT (${MAX_DEVICES_PER_ACCOUNT}) messages to one account`,
    send(destination('alice', range(MAX_DEVICES_PER_ACCOUNT).map((deviceId) => message({ deviceId })))),
    send(destination('alice', range(MAX_DEVICES_PER_ACCOUNT + 1).map((deviceId) => message({ deviceId })))),
  ],
  [
    `more than MAX_SEND_DESTINATIONS (${MAX_SEND_DESTINATIONS}) destinations`,
    send(...range(MAX_SEND_DESTINATIONS).map((i) => destination(`user${i}`))),
    send(...range(MAX_SEND_DESTINATIONS + 1).map((i) => destination(`user${i}`))),
  ],
  ['an ack with no ids', ack([0]), ack([])],
  [`an ack with more than MAX_ACKS_PER_FRAME (${MAX_ACKS_PER_FRAME}) ids`, ack(range(MAX_ACKS_PER_FRAME)), ack(range(MAX_ACKS_PER_FRAME + 1))],
  ['an ack id that is not a varint', ack([1]), frame(3, new ProtoWriter().bytes(1, bytes(1)).finish())],
  ['an ack id of 2^53', ack([Number.MAX_SAFE_INTEGER]), frame(3, rawVarint(1, 2n ** 53n))],
  ['a multicast with zero recipients', multicast(recipient('alice')), multicast()],
  ['a multicast recipient with zero devices', multicast(recipient('alice')), multicast(recipient('alice', []))],
  ['a multicast without a request id', multicastWithout(), multicastWithout('requestId')],
  ['a multicast without a type', multicastWithout(), multicastWithout('type')],
  ['a multicast without a body', multicastWithout(), multicastWithout('body')],
  ['a multicast body that is a varint', multicastWithout(), frame(4, concat(rawVarint(1, 1n), rawVarint(2, 1n), rawVarint(3, 1n), toAliceDevice1))],
  ['a multicast of type 0', multicastOfType(1), multicastOfType(0)],
  ['a multicast of type 256', multicastOfType(255), multicastOfType(256)],
  ['a multicast to an upper-case username', multicast(recipient('alice')), multicast(recipient('Alice'))],
  ['a multicast to a Cyrillic look-alike', multicast(recipient('alice')), multicast(recipient('аlice'))],
  ['a multicast to a username that is not UTF-8', multicast(recipient('alice')), rawMulticast(MULTICAST_FIELDS, rawRecipient(bytes(0x61, 0xff, 0x62), rawDevice(device())))],
  ['a multicast recipient without a username', multicastWithout(), rawMulticast(MULTICAST_FIELDS, rawRecipient(undefined, rawDevice(device())))],
  ['a multicast recipient that is a varint', multicastWithout(), frame(4, concat(new ProtoWriter().uint32(1, 1).uint32(2, 1).bytes(3, bytes()).finish(), rawVarint(4, 1n)))],
  ['a multicast device that is a varint', multicastWithout(), rawMulticast(MULTICAST_FIELDS, concat(rawRecipient(utf8('alice')), rawVarint(2, 1n)))],
  ['a multicast to device id 0', multicastOne({ deviceId: 1 }), multicastOne({ deviceId: 0 })],
  ['a multicast to device id MAX_DEVICE_ID + 1', multicastOne({ deviceId: MAX_DEVICE_ID }), multicastOne({ deviceId: MAX_DEVICE_ID + 1 })],
  ['a multicast to registration id 0', multicastOne({ registrationId: 1 }), multicastOne({ registrationId: 0 })],
  [
    'a multicast to registration id MAX_REGISTRATION_ID + 1',
    multicastOne({ registrationId: MAX_REGISTRATION_ID }),
    multicastOne({ registrationId: MAX_REGISTRATION_ID + 1 }),
  ],
  ['a multicast device without a device id', multicastWithout(), rawMulticast(MULTICAST_FIELDS, rawRecipient(utf8('alice'), rawDevice({ registrationId: 1 })))],
  ['a multicast device without a registration id', multicastWithout(), rawMulticast(MULTICAST_FIELDS, rawRecipient(utf8('alice'), rawDevice({ deviceId: 1 })))],
  [
    'a device named twice in one multicast recipient',
    multicast(recipient('alice', [device(1), device(2)]), recipient('bob', [device(1)])),
    multicast(recipient('alice', [device(1), device(1, 7)])),
  ],
  ['an account named twice in a multicast', multicast(recipient('alice'), recipient('bob')), multicast(recipient('alice'), recipient('bob'), recipient('alice'))],
  [
    `a multicast naming more than MAX_DEVICES_PER_ACCOUNT (${MAX_DEVICES_PER_ACCOUNT}) devices of one account`,
    multicast(recipient('alice', range(MAX_DEVICES_PER_ACCOUNT).map((id) => device(id)))),
    multicast(recipient('alice', range(MAX_DEVICES_PER_ACCOUNT + 1).map((id) => device(id)))),
  ],
  [
    `a multicast to more than MAX_MULTICAST_RECIPIENTS (${MAX_MULTICAST_RECIPIENTS}) accounts`,
    multicast(...range(MAX_MULTICAST_RECIPIENTS).map((i) => recipient(`user${i}`))),
    multicast(...range(MAX_MULTICAST_RECIPIENTS + 1).map((i) => recipient(`user${i}`))),
  ],
];

const refused = (code: string, ...mismatches: Uint8Array[]) => {
  const writer = new ProtoWriter().uint32(1, 1).bytes(2, utf8(code)).bytes(3, utf8('no'));
  for (const m of mismatches) writer.bytes(4, m);
  return frame(3, writer.finish());
};
const mismatch = (username: string, missing: number[] = []) => {
  const writer = new ProtoWriter().bytes(1, utf8(username));
  for (const id of missing) writer.uint32(2, id);
  return writer.finish();
};
const envelope = (source: string) =>
  encodeServerFrame({ kind: 'envelope', envelope: { id: 1, timestamp: 2, source, sourceDevice: 1, type: 1, body: bytes(1) } });
const sent = (requestId: bigint | undefined, timestamp: bigint | undefined) =>
  frame(2, concat(requestId === undefined ? bytes() : rawVarint(1, requestId), timestamp === undefined ? bytes() : rawVarint(2, timestamp)));

const serverCases: Case[] = [
  ['empty input', encodeServerFrame({ kind: 'ready' }), new Uint8Array(0)],
  ['two fields', encodeServerFrame({ kind: 'ready' }), concat(encodeServerFrame({ kind: 'ready' }), encodeServerFrame({ kind: 'drained' }))],
  ['a frame whose body is a varint', encodeServerFrame({ kind: 'ready' }), new ProtoWriter().uint32(1, 0).finish()],
  ['an unknown kind (6)', frame(5, new Uint8Array(0)), frame(6, new Uint8Array(0))],
  ['an unknown kind (2^28)', frame(5, new Uint8Array(0)), frame(2 ** 28, new Uint8Array(0))],
  ['a sent without a timestamp', sent(1n, 0n), sent(1n, undefined)],
  ['a sent without a request id', sent(0n, 1n), sent(undefined, 1n)],
  ['a sent timestamp of 2^53', sent(1n, 2n ** 53n - 1n), sent(1n, 2n ** 53n)],
  ['a sent request id of 2^32', sent(2n ** 32n - 1n, 1n), sent(2n ** 32n, 1n)],
  ['an unknown refusal code', refused('RATE_LIMITED'), refused('TEAPOT')],
  ['a lower-case refusal code', refused('DEVICE_MISMATCH'), refused('device_mismatch')],
  ['a refusal without a message', refused('UNAVAILABLE'), frame(3, new ProtoWriter().uint32(1, 1).bytes(2, utf8('UNAVAILABLE')).finish())],
  ['a mismatch naming a non-canonical account', refused('DEVICE_MISMATCH', mismatch('alice')), refused('DEVICE_MISMATCH', mismatch('ALICE'))],
  [
    `a mismatch listing more than MAX_DEVICES_PER_ACCOUNT devices`,
    refused('DEVICE_MISMATCH', mismatch('alice', range(MAX_DEVICES_PER_ACCOUNT))),
    refused('DEVICE_MISMATCH', mismatch('alice', range(MAX_DEVICES_PER_ACCOUNT + 1))),
  ],
  ['an envelope from a non-canonical account', envelope('bob'), envelope('Bob')],
  ['an envelope from a Cyrillic look-alike', envelope('bob'), envelope('bоb')],
  [
    'an envelope without a body',
    envelope('bob'),
    frame(4, new ProtoWriter().uint64(1, 1).uint64(2, 2).bytes(3, utf8('bob')).uint32(4, 1).uint32(5, 1).finish()),
  ],
];

describe('decodeClientFrame refuses with INVALID_ENCODING', () => {
  it.each(clientCases)('%s', (_, accepted, refused) => {
    expect(outcome(() => decodeClientFrame(accepted))).toBe('decoded');
    expect(outcome(() => decodeClientFrame(refused))).toBe('INVALID_ENCODING');
  });
});

describe('decodeServerFrame refuses with INVALID_ENCODING', () => {
  it.each(serverCases)('%s', (_, accepted, refused) => {
    expect(outcome(() => decodeServerFrame(accepted))).toBe('decoded');
    expect(outcome(() => decodeServerFrame(refused))).toBe('INVALID_ENCODING');
  });
});

const usernameArb = fc.stringMatching(/^[a-z][a-z0-9_]{2,31}$/);
const bodyArb = fc.uint8Array({ maxLength: 48 });
const uint32 = fc.integer({ min: 0, max: 0xffff_ffff });
const deviceIdArb = fc.integer({ min: 1, max: MAX_DEVICE_ID });
const messageArb: fc.Arbitrary<OutgoingMessage> = fc.record({
  deviceId: deviceIdArb,
  registrationId: fc.integer({ min: 1, max: MAX_REGISTRATION_ID }),
  type: fc.integer({ min: 1, max: 255 }),
  body: bodyArb,
});
const destinationArb: fc.Arbitrary<Destination> = fc.record({
  username: usernameArb,
  messages: fc.uniqueArray(messageArb, { minLength: 1, maxLength: 4, selector: (m) => m.deviceId }),
});
const clientFrameArb: fc.Arbitrary<ClientFrame> = fc.oneof(
  fc.record({ kind: fc.constant('auth' as const), token: bodyArb }),
  fc.record({
    kind: fc.constant('send' as const),
    requestId: uint32,
    destinations: fc.uniqueArray(destinationArb, { minLength: 1, maxLength: 3, selector: (d) => d.username }),
  }),
  fc.record({ kind: fc.constant('ack' as const), ids: fc.array(fc.maxSafeNat(), { minLength: 1, maxLength: 8 }) }),
  fc.record({
    kind: fc.constant('multicast' as const),
    requestId: uint32,
    type: fc.integer({ min: 1, max: 255 }),
    body: bodyArb,
    recipients: fc.uniqueArray(
      fc.record({
        username: usernameArb,
        devices: fc.uniqueArray(fc.record({ deviceId: deviceIdArb, registrationId: fc.integer({ min: 1, max: MAX_REGISTRATION_ID }) }), {
          minLength: 1,
          maxLength: 4,
          selector: (d) => d.deviceId,
        }),
      }),
      { minLength: 1, maxLength: 3, selector: (r) => r.username },
    ),
  }),
);
const REFUSAL_CODES: SendRefusalCode[] = ['DEVICE_MISMATCH', 'UNKNOWN_RECIPIENT', 'MESSAGE_TOO_LARGE', 'MAILBOX_FULL', 'RATE_LIMITED', 'UNAVAILABLE'];
const deviceIds = fc.array(deviceIdArb, { maxLength: 4 });
const serverFrameArb: fc.Arbitrary<ServerFrame> = fc.oneof(
  fc.constant({ kind: 'ready' as const }),
  fc.constant({ kind: 'drained' as const }),
  fc.record({ kind: fc.constant('sent' as const), requestId: uint32, timestamp: fc.maxSafeNat() }),
  fc.record({
    kind: fc.constant('refused' as const),
    requestId: uint32,
    code: fc.constantFrom(...REFUSAL_CODES),
    message: fc.string({ unit: 'grapheme', maxLength: 20 }),
    mismatches: fc.array(fc.record({ username: usernameArb, missing: deviceIds, extra: deviceIds, stale: deviceIds }), { maxLength: 3 }),
  }),
  fc.record({
    kind: fc.constant('envelope' as const),
    envelope: fc.record({
      id: fc.maxSafeNat(),
      timestamp: fc.maxSafeNat(),
      source: usernameArb,
      sourceDevice: deviceIdArb,
      type: fc.integer({ min: 1, max: 255 }),
      body: bodyArb,
    }),
  }),
);

describe('decodeServerFrames', () => {
  it('reads the frames of one message in order, each as decodeServerFrame reads it alone', () => {
    const frames = [EXAMPLE_SERVER_FRAMES.sent[0]!, ...EXAMPLE_SERVER_FRAMES.envelope, { kind: 'drained' } as const];
    expect(decodeServerFrames(concat(...frames.map(encodeServerFrame)))).toEqual(frames);
    expect(decodeServerFrames(encodeServerFrame(frames[0]!))).toEqual([frames[0]]);
  });

  it('refuses an empty message, and a message with one bad frame among good ones', () => {
    const good = encodeServerFrame({ kind: 'ready' });
    expect(outcome(() => decodeServerFrames(new Uint8Array(0)))).toBe('INVALID_ENCODING');
    for (const [, , refused] of serverCases.slice(2)) {
      expect(outcome(() => decodeServerFrames(concat(good, refused, good)))).toBe('INVALID_ENCODING');
    }
  });
});

describeDecoderFuzzing('frame fuzzing', {
  client: { valid: clientFrameArb, encode: encodeClientFrame, decode: decodeClientFrame },
  server: { valid: serverFrameArb, encode: encodeServerFrame, decode: decodeServerFrame },
});
