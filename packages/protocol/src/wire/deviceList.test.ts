/**
 * Signed device lists: they round-trip, verify only under the account's
 * identity key and only bit for bit, cannot stand in for a prekey signature
 * (nor a prekey signature for them), and the decoder refuses every list that
 * breaks a rule, throwing nothing but ProtocolError whatever the bytes.
 */
import { serializePublicKey, xeddsaSign, xeddsaVerify } from '@parley/crypto';
import { createNodeProvider } from '@parley/crypto/node';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';

import { applyMutations, asyncOutcome, mutations, outcome } from '../../../../testing/fuzz.js';
import { ProtoWriter } from '../codec/protobuf.js';
import { isProtocolError } from '../errors.js';
import { generateIdentityKeyPair, generateKyberPreKey, generateSignedPreKey, verifyPreKeySignature, type IdentityKeyPair } from '../keys.js';
import { MAX_DEVICE_ID, MAX_DEVICES_PER_ACCOUNT, MAX_REGISTRATION_ID } from '../limits.js';
import {
  decodeDeviceList,
  encodeDeviceList,
  signDeviceList,
  verifyDeviceList,
  type DeviceEntry,
  type DeviceList,
  type SignedDeviceList,
} from './deviceList.js';

const provider = createNodeProvider();
const utf8 = (s: string) => new TextEncoder().encode(s);

const flipped = (bytes: Uint8Array, bit: number): Uint8Array => {
  const copy = bytes.slice();
  copy[bit >> 3]! ^= 1 << (bit & 7);
  return copy;
};

/** A public key that no one holds, in the serialized form (0x05 ‖ u). */
const fakeKey = (seed: number) => Uint8Array.from([0x05, ...new Uint8Array(32).fill(seed)]);
const device = (deviceId: number, overrides: Partial<DeviceEntry> = {}): DeviceEntry => ({
  deviceId,
  registrationId: 1000 + deviceId,
  authKey: fakeKey(deviceId & 0xff),
  ...overrides,
});
const list = (overrides: Partial<DeviceList> = {}): DeviceList => ({ username: 'alice', version: 1, devices: [device(1)], ...overrides });
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

let identity: IdentityKeyPair;
let stranger: IdentityKeyPair;
let realList: DeviceList;
let signed: SignedDeviceList;

beforeAll(async () => {
  identity = await generateIdentityKeyPair(provider);
  stranger = await generateIdentityKeyPair(provider);
  const auth = [await generateIdentityKeyPair(provider), await generateIdentityKeyPair(provider)];
  realList = {
    username: 'alice',
    version: 7,
    devices: [
      { deviceId: 1, registrationId: 1234, authKey: auth[0]!.publicKey },
      { deviceId: 3, registrationId: MAX_REGISTRATION_ID, authKey: auth[1]!.publicKey },
    ],
  };
  signed = await signDeviceList(provider, identity, realList);
});

describe('signed device lists', () => {
  it('sign and verify round trip, signing the encoded list', async () => {
    expect(signed.list).toEqual(encodeDeviceList(realList));
    expect(signed.signature.length).toBe(64);
    expect(await verifyDeviceList(provider, identity.publicKey, signed)).toEqual(realList);
    expect(decodeDeviceList(signed.list)).toEqual(realList);
  });

  it('signs the documented message: "Parley device list v1" ‖ 0x00 ‖ list', async () => {
    const message = Uint8Array.from([...utf8('Parley device list v1'), 0x00, ...signed.list]);
    expect(await xeddsaVerify(provider, identity.publicKey.subarray(1), message, signed.signature)).toBe(true);
  });

  it('refuses every single bit flip of the list or the signature', async () => {
    let decodableFlips = 0;
    for (let bit = 0; bit < signed.list.length * 8; bit++) {
      const tampered = flipped(signed.list, bit);
      const decodable = outcome(() => decodeDeviceList(tampered)) === 'decoded';
      const code = await asyncOutcome(() => verifyDeviceList(provider, identity.publicKey, { ...signed, list: tampered }));
      // A flip the decoder would take (a key byte, an id) can only be caught by the signature.
      if (decodable) decodableFlips++;
      expect(decodable ? ['INVALID_SIGNATURE'] : ['INVALID_SIGNATURE', 'INVALID_ENCODING', 'INVALID_KEY'], `list bit ${bit}`).toContain(code);
    }
    for (let bit = 0; bit < signed.signature.length * 8; bit++) {
      const code = await asyncOutcome(() => verifyDeviceList(provider, identity.publicKey, { ...signed, signature: flipped(signed.signature, bit) }));
      expect(code, `signature bit ${bit}`).toBe('INVALID_SIGNATURE');
    }
    // Most flips leave a well-formed list: this test would notice a verifier that only decodes.
    expect(decodableFlips).toBeGreaterThan(signed.list.length * 4);
  });

  it('refuses a truncated or extended list or signature', async () => {
    for (const tampered of [
      { ...signed, list: signed.list.subarray(0, signed.list.length - 1) },
      { ...signed, list: Uint8Array.from([...signed.list, ...new ProtoWriter().uint32(9, 1).finish()]) },
      { ...signed, signature: signed.signature.subarray(0, 63) },
      { ...signed, signature: Uint8Array.from([...signed.signature, 0]) },
      { ...signed, signature: new Uint8Array(64) },
    ]) {
      expect(await asyncOutcome(() => verifyDeviceList(provider, identity.publicKey, tampered))).toBe('INVALID_SIGNATURE');
    }
  });

  it('does not verify under another identity key', async () => {
    expect(await asyncOutcome(() => verifyDeviceList(provider, stranger.publicKey, signed))).toBe('INVALID_SIGNATURE');
    const theirs = await signDeviceList(provider, stranger, realList);
    expect(await asyncOutcome(() => verifyDeviceList(provider, identity.publicKey, theirs))).toBe('INVALID_SIGNATURE');
    expect(await asyncOutcome(() => verifyDeviceList(provider, stranger.publicKey, theirs))).toBe('resolved');
  });

  it('refuses an identity key that is not a serialized Curve25519 key', async () => {
    for (const key of [identity.publicKey.subarray(1), Uint8Array.from([0x06, ...identity.publicKey.subarray(1)])]) {
      expect(await asyncOutcome(() => verifyDeviceList(provider, key, signed))).toBe('INVALID_KEY');
    }
  });

  it('verifies, then still refuses a correctly signed list that breaks the rules', async () => {
    const bad = await signDeviceList(provider, identity, list({ devices: [device(1), device(1)] }));
    expect(await asyncOutcome(() => verifyDeviceList(provider, identity.publicKey, bad))).toBe('INVALID_ENCODING');
  });
});

describe('domain separation', () => {
  it('a device list signature never verifies as a prekey signature over the same bytes', async () => {
    expect(await verifyPreKeySignature(provider, identity.publicKey, signed.list, signed.signature)).toBe(false);
    // The control: a bare signature over those bytes, as a prekey signature is made, does verify as one…
    const bare = await xeddsaSign(provider, identity.privateKey, signed.list);
    expect(await verifyPreKeySignature(provider, identity.publicKey, signed.list, bare)).toBe(true);
    // …and is no device list signature.
    const asList = { list: signed.list, signature: bare };
    expect(await asyncOutcome(() => verifyDeviceList(provider, identity.publicKey, asList))).toBe('INVALID_SIGNATURE');
  });

  it('a prekey signature never verifies as a device list signature', async () => {
    const signedPreKey = await generateSignedPreKey(provider, identity, 1, 0);
    const kyberPreKey = await generateKyberPreKey(provider, identity, 1, 0);
    for (const [publicKey, signature] of [
      [serializePublicKey(signedPreKey.publicKey), signedPreKey.signature],
      [kyberPreKey.publicKey, kyberPreKey.signature],
    ] as const) {
      expect(await verifyPreKeySignature(provider, identity.publicKey, publicKey, signature)).toBe(true);
      expect(await asyncOutcome(() => verifyDeviceList(provider, identity.publicKey, { list: publicKey, signature }))).toBe('INVALID_SIGNATURE');
    }
  });
});

/** A device entry written field by field, for what the encoder would never write. */
const rawDevice = (fields: { deviceId?: number; registrationId?: number; authKey?: Uint8Array }) => {
  const writer = new ProtoWriter();
  if (fields.deviceId !== undefined) writer.uint32(1, fields.deviceId);
  if (fields.registrationId !== undefined) writer.uint32(2, fields.registrationId);
  if (fields.authKey !== undefined) writer.bytes(3, fields.authKey);
  return writer.finish();
};
const rawList = (username: Uint8Array | undefined, version: number | undefined, ...devices: Uint8Array[]) => {
  const writer = new ProtoWriter();
  if (username !== undefined) writer.bytes(1, username);
  if (version !== undefined) writer.uint64(2, version);
  for (const d of devices) writer.bytes(3, d);
  return writer.finish();
};
const goodDevice = rawDevice({ deviceId: 1, registrationId: 1, authKey: fakeKey(1) });

/** An encoded list of these devices. */
const withDevices = (...devices: DeviceEntry[]) => encodeDeviceList(list({ devices }));
/** An encoded list of device 1, changed. */
const withDevice = (overrides: Partial<DeviceEntry>) => withDevices(device(1, overrides));
/** A raw list for 'alice' at version 1. */
const rawAlice = (...devices: Uint8Array[]) => rawList(utf8('alice'), 1, ...devices);
const authKeyBytes = fakeKey(1).subarray(1);

/** [what is wrong, a list just inside the rule, the list that breaks it, the code it is refused with]. */
const cases: (readonly [string, Uint8Array, Uint8Array, 'INVALID_ENCODING' | 'INVALID_KEY'])[] = [
  ['empty input', withDevices(device(1)), new Uint8Array(0), 'INVALID_ENCODING'],
  ['zero devices', withDevices(device(1)), withDevices(), 'INVALID_ENCODING'],
  [
    `more than MAX_DEVICES_PER_ACCOUNT (${MAX_DEVICES_PER_ACCOUNT}) devices`,
    withDevices(...range(MAX_DEVICES_PER_ACCOUNT).map((id) => device(id))),
    withDevices(...range(MAX_DEVICES_PER_ACCOUNT + 1).map((id) => device(id))),
    'INVALID_ENCODING',
  ],
  ['a device listed twice', withDevices(device(1), device(2)), withDevices(device(1), device(2), device(1, { registrationId: 5 })), 'INVALID_ENCODING'],
  ['device id 0', withDevices(device(1)), withDevices(device(0)), 'INVALID_ENCODING'],
  ['device id MAX_DEVICE_ID + 1', withDevices(device(MAX_DEVICE_ID)), withDevices(device(MAX_DEVICE_ID + 1)), 'INVALID_ENCODING'],
  ['registration id 0', withDevice({ registrationId: 1 }), withDevice({ registrationId: 0 }), 'INVALID_ENCODING'],
  [
    'registration id MAX_REGISTRATION_ID + 1',
    withDevice({ registrationId: MAX_REGISTRATION_ID }),
    withDevice({ registrationId: MAX_REGISTRATION_ID + 1 }),
    'INVALID_ENCODING',
  ],
  ['version 0', encodeDeviceList(list({ version: 1 })), encodeDeviceList(list({ version: 0 })), 'INVALID_ENCODING'],
  ['no version', rawAlice(goodDevice), rawList(utf8('alice'), undefined, goodDevice), 'INVALID_ENCODING'],
  ['no username', rawAlice(goodDevice), rawList(undefined, 1, goodDevice), 'INVALID_ENCODING'],
  ['an upper-case username', encodeDeviceList(list({ username: 'alice' })), encodeDeviceList(list({ username: 'Alice' })), 'INVALID_ENCODING'],
  ['a Cyrillic look-alike username', encodeDeviceList(list({ username: 'alice' })), encodeDeviceList(list({ username: 'аlice' })), 'INVALID_ENCODING'],
  ['a username that is not UTF-8', rawAlice(goodDevice), rawList(Uint8Array.of(0x61, 0xc0, 0x80), 1, goodDevice), 'INVALID_ENCODING'],
  ['a device that is a varint', rawAlice(goodDevice), Uint8Array.from([...rawAlice(goodDevice), 0x18, 0x01]), 'INVALID_ENCODING'],
  ['a device without a registration id', rawAlice(goodDevice), rawAlice(rawDevice({ deviceId: 1, authKey: fakeKey(1) })), 'INVALID_ENCODING'],
  ['a device without an auth key', rawAlice(goodDevice), rawAlice(rawDevice({ deviceId: 1, registrationId: 1 })), 'INVALID_ENCODING'],
  ['a 32-byte auth key', withDevice({}), withDevice({ authKey: authKeyBytes }), 'INVALID_KEY'],
  ['a 34-byte auth key', withDevice({}), withDevice({ authKey: Uint8Array.from([0x05, ...authKeyBytes, 0]) }), 'INVALID_KEY'],
  ['an auth key of unknown type', withDevice({}), withDevice({ authKey: Uint8Array.from([0x06, ...authKeyBytes]) }), 'INVALID_KEY'],
];

describe('decodeDeviceList refuses', () => {
  it.each(cases)('%s', (_, accepted, refused, code) => {
    expect(outcome(() => decodeDeviceList(accepted))).toBe('decoded');
    expect(outcome(() => decodeDeviceList(refused))).toBe(code);
  });

  it('and copies auth keys out of the input buffer', () => {
    const encoded = encodeDeviceList(realList);
    const decoded = decodeDeviceList(encoded);
    encoded.fill(0);
    expect(decoded).toEqual(realList);
  });
});

const deviceListArb: fc.Arbitrary<DeviceList> = fc.record({
  username: fc.stringMatching(/^[a-z][a-z0-9_]{2,31}$/),
  version: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  devices: fc.uniqueArray(
    fc.record({
      deviceId: fc.integer({ min: 1, max: MAX_DEVICE_ID }),
      registrationId: fc.integer({ min: 1, max: MAX_REGISTRATION_ID }),
      authKey: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((u) => Uint8Array.from([0x05, ...u])),
    }),
    { minLength: 1, maxLength: MAX_DEVICES_PER_ACCOUNT, selector: (d) => d.deviceId },
  ),
});

describe('device list fuzzing', () => {
  it('round-trips any valid list', () => {
    fc.assert(
      fc.property(deviceListArb, (value) => {
        expect(decodeDeviceList(encodeDeviceList(value))).toEqual(value);
      }),
    );
  });

  it('throws only ProtocolError on random bytes and mutated lists, and whatever it accepts round-trips', () => {
    const seen = new Map<string, number>();
    const check = (input: Uint8Array) => {
      let result = 'decoded';
      try {
        const decoded = decodeDeviceList(input);
        expect(decodeDeviceList(encodeDeviceList(decoded))).toEqual(decoded);
      } catch (error) {
        if (!isProtocolError(error)) throw new Error(`decodeDeviceList threw ${String(error)}`, { cause: error });
        result = error.code;
      }
      expect(['decoded', 'INVALID_ENCODING', 'INVALID_KEY']).toContain(result);
      seen.set(result, (seen.get(result) ?? 0) + 1);
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), check), { numRuns: 1_000 });
    fc.assert(
      fc.property(deviceListArb.map(encodeDeviceList), mutations, (valid, changes) => {
        check(applyMutations(valid, changes));
      }),
      { numRuns: 2_000 },
    );
    // The mutations must both break lists and leave some decodable, or the property says little.
    for (const result of ['decoded', 'INVALID_ENCODING']) expect(seen.get(result), result).toBeGreaterThan(20);
  });
});
