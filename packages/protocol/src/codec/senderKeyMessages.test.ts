/**
 * The sender key codecs: SenderKeyDistributionMessage and SenderKeyMessage
 * round-trip; the decoders refuse, with `ProtocolError('INVALID_ENCODING')`
 * and nothing else, each malformed message beside the boundary value still
 * accepted; fuzzing shows that any input either decodes to a message that
 * round-trips or throws that one error. Sender key records round-trip in
 * libsignal's proto3 form and refuse damaged bytes with INVALID_STATE only.
 */
import { concatBytes, SecretBytes, serializePublicKey } from '@parley/crypto';
import { createNodeProvider } from '@parley/crypto/node';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { applyMutations, describeDecoderFuzzing, mutations, outcome } from '../../../../testing/fuzz.js';
import { isProtocolError } from '../errors.js';
import { MAX_SENDER_KEY_STATES } from '../limits.js';
import type { SenderKeyState } from '../senderKeys/senderKeyState.js';
import { ProtoWriter } from './protobuf.js';
import {
  bytesToUuid,
  decodeSenderKeyDistributionMessage,
  decodeSenderKeyMessage,
  encodeSenderKeyDistributionMessage,
  encodeSenderKeyMessage,
  encodeSenderKeyMessageBody,
  uuidToBytes,
  verifySenderKeyMessageSignature,
} from './senderKeyMessages.js';
import { deserializeSenderKeyRecord, serializeSenderKeyRecord } from './senderKeyRecord.js';

const provider = createNodeProvider();
const ID = '6ba7b810-9dad-41d1-80b4-00c04fd430c8';
const key32 = (fill: number) => new Uint8Array(32).fill(fill);

interface Distribution {
  readonly distributionId: string;
  readonly chainId: number;
  readonly iteration: number;
  readonly chainKey: Uint8Array;
  readonly signingKey: Uint8Array;
}
interface Message {
  readonly distributionId: string;
  readonly chainId: number;
  readonly iteration: number;
  readonly ciphertext: Uint8Array;
  readonly signature: Uint8Array;
}

const encodeDistribution = (d: Distribution) => encodeSenderKeyDistributionMessage({ ...d, chainKey: new SecretBytes(d.chainKey) }).serialized;
function decodeDistribution(bytes: Uint8Array): Distribution {
  const { distributionId, chainId, iteration, chainKey, signingKey } = decodeSenderKeyDistributionMessage(bytes);
  return { distributionId, chainId, iteration, chainKey: chainKey.expose(), signingKey };
}
const encodeMessage = (m: Message) => concatBytes(encodeSenderKeyMessageBody(m), m.signature);
function decodeMessage(bytes: Uint8Array): Message {
  const { distributionId, chainId, iteration, ciphertext, signature } = decodeSenderKeyMessage(bytes);
  return { distributionId, chainId, iteration, ciphertext, signature };
}

const u32 = fc.nat({ max: 0xffff_ffff });
const distributionArb: fc.Arbitrary<Distribution> = fc.record({
  distributionId: fc.uuid(),
  chainId: u32,
  iteration: u32,
  chainKey: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  signingKey: fc.uint8Array({ minLength: 32, maxLength: 32 }),
});
const messageArb: fc.Arbitrary<Message> = fc.record({
  distributionId: fc.uuid(),
  chainId: u32,
  iteration: u32,
  ciphertext: fc.uint8Array({ maxLength: 96 }),
  signature: fc.uint8Array({ minLength: 64, maxLength: 64 }),
});

const distribution: Distribution = { distributionId: ID, chainId: 0x7fff_ffff, iteration: 0, chainKey: key32(1), signingKey: key32(2) };
/** A distribution message body built field by field, to leave fields out or change them. */
function distributionBody(fields: { uuid?: Uint8Array; chainId?: number; iteration?: number; chainKey?: Uint8Array; signingKey?: Uint8Array }, version = 0x33): Uint8Array {
  const w = new ProtoWriter();
  if (fields.uuid !== undefined) w.bytes(1, fields.uuid);
  if (fields.chainId !== undefined) w.uint32(2, fields.chainId);
  if (fields.iteration !== undefined) w.uint32(3, fields.iteration);
  if (fields.chainKey !== undefined) w.bytes(4, fields.chainKey);
  if (fields.signingKey !== undefined) w.bytes(5, fields.signingKey);
  return w.finish(Uint8Array.of(version));
}
const full = { uuid: uuidToBytes(ID), chainId: 5, iteration: 9, chainKey: key32(3), signingKey: serializePublicKey(key32(4)) };

describe('sender key message codecs', () => {
  it('writes the version byte 0x33 and libsignal field order', () => {
    const bytes = encodeDistribution(distribution);
    expect(bytes[0]).toBe(0x33);
    expect(bytes).toEqual(distributionBody({ ...full, chainId: 0x7fff_ffff, iteration: 0, chainKey: key32(1), signingKey: serializePublicKey(key32(2)) }));
  });

  it('converts distribution ids both ways and refuses malformed ones', () => {
    expect(bytesToUuid(uuidToBytes(ID))).toBe(ID);
    for (const bad of ['', ID.toUpperCase(), ID.replaceAll('-', ''), `${ID}0`]) expect(() => uuidToBytes(bad)).toThrow(RangeError);
  });

  it('refuses every malformed distribution message beside the accepted boundary', () => {
    expect(outcome(() => decodeSenderKeyDistributionMessage(distributionBody(full)))).toBe('decoded');
    // libsignal reads only the high nibble of the version byte.
    expect(outcome(() => decodeSenderKeyDistributionMessage(distributionBody(full, 0x3f)))).toBe('decoded');
    for (const version of [0x23, 0x43, 0x00]) expect(outcome(() => decodeSenderKeyDistributionMessage(distributionBody(full, version)))).toBe('INVALID_ENCODING');
    for (const missing of ['uuid', 'chainId', 'iteration', 'chainKey', 'signingKey'] as const) {
      const { [missing]: _, ...rest } = full;
      expect(outcome(() => decodeSenderKeyDistributionMessage(distributionBody(rest))), missing).toBe('INVALID_ENCODING');
    }
    for (const uuid of [new Uint8Array(15), new Uint8Array(17)]) expect(outcome(() => decodeSenderKeyDistributionMessage(distributionBody({ ...full, uuid })))).toBe('INVALID_ENCODING');
    for (const chainKey of [new Uint8Array(31), new Uint8Array(33)]) expect(outcome(() => decodeSenderKeyDistributionMessage(distributionBody({ ...full, chainKey })))).toBe('INVALID_ENCODING');
    const wrongType = serializePublicKey(key32(4));
    wrongType[0] = 0x06;
    for (const signingKey of [wrongType, key32(4), new Uint8Array(34)]) {
      expect(outcome(() => decodeSenderKeyDistributionMessage(distributionBody({ ...full, signingKey })))).toBe('INVALID_ENCODING');
    }
    expect(outcome(() => decodeSenderKeyDistributionMessage(new Uint8Array(0)))).toBe('INVALID_ENCODING');
  });

  it('refuses every malformed sender key message beside the accepted boundary', () => {
    const body = encodeSenderKeyMessageBody({ distributionId: ID, chainId: 1, iteration: 2, ciphertext: new Uint8Array(0) });
    expect(outcome(() => decodeSenderKeyMessage(concatBytes(body, new Uint8Array(64))))).toBe('decoded');
    expect(outcome(() => decodeSenderKeyMessage(concatBytes(body, new Uint8Array(63))))).toBe('INVALID_ENCODING');
    expect(outcome(() => decodeSenderKeyMessage(new Uint8Array(64)))).toBe('INVALID_ENCODING');
    const wrongVersion = concatBytes(body, new Uint8Array(64));
    wrongVersion[0] = 0x43;
    expect(outcome(() => decodeSenderKeyMessage(wrongVersion))).toBe('INVALID_ENCODING');
    const noCiphertext = new ProtoWriter().bytes(1, uuidToBytes(ID)).uint32(2, 1).uint32(3, 2).finish(Uint8Array.of(0x33));
    expect(outcome(() => decodeSenderKeyMessage(concatBytes(noCiphertext, new Uint8Array(64))))).toBe('INVALID_ENCODING');
  });

  it('signs the version byte and the body with XEdDSA, and the signature covers every byte', async () => {
    const { privateKey, publicKey } = await provider.x25519GenerateKeyPair();
    const message = await encodeSenderKeyMessage(provider, { distributionId: ID, chainId: 1, iteration: 2, ciphertext: key32(5) }, privateKey);
    expect(await verifySenderKeyMessageSignature(provider, decodeSenderKeyMessage(message.serialized), publicKey)).toBe(true);
    const altered = message.serialized.slice();
    altered[0] = 0x3f; // still decodes: only the high nibble is the version
    expect(await verifySenderKeyMessageSignature(provider, decodeSenderKeyMessage(altered), publicKey)).toBe(false);
  });
});

describeDecoderFuzzing('sender key message fuzzing', {
  distribution: { valid: distributionArb, encode: encodeDistribution, decode: decodeDistribution },
  message: { valid: messageArb, encode: encodeMessage, decode: decodeMessage },
});

function state(overrides: Partial<SenderKeyState> = {}): SenderKeyState {
  return {
    messageVersion: 3,
    chainId: 77,
    chainKey: { iteration: 4, key: new SecretBytes(key32(6)) },
    signingKey: { publicKey: key32(7), privateKey: new SecretBytes(key32(8)) },
    skippedKeys: [
      { iteration: 0, seed: new SecretBytes(key32(9)) },
      { iteration: 2, seed: new SecretBytes(key32(10)) },
    ],
    ...overrides,
  };
}

describe('sender key record codec', () => {
  it('round-trips states with and without private keys, skipped keys and zero fields', () => {
    const record = {
      states: [state(), state({ chainId: 0, chainKey: { iteration: 0, key: new SecretBytes(key32(1)) }, signingKey: { publicKey: key32(2), privateKey: undefined }, skippedKeys: [] })],
    };
    const bytes = serializeSenderKeyRecord(record).expose();
    const back = deserializeSenderKeyRecord(bytes);
    expect(serializeSenderKeyRecord(back).expose()).toEqual(bytes);
    expect(back.states[1]?.signingKey.privateKey).toBeUndefined();
    expect(back.states[0]?.skippedKeys.map((k) => k.iteration)).toEqual([0, 2]);
    expect(serializeSenderKeyRecord({ states: [] }).expose()).toEqual(new Uint8Array(0));
  });

  it('reads a missing message_version as 3, as libsignal does', () => {
    const signing = new ProtoWriter().bytes(1, serializePublicKey(key32(2))).finish();
    const chain = new ProtoWriter().bytes(2, key32(1)).finish();
    const bytes = new ProtoWriter().bytes(1, new ProtoWriter().bytes(2, chain).bytes(3, signing).finish()).finish();
    expect(deserializeSenderKeyRecord(bytes).states[0]?.messageVersion).toBe(3);
  });

  it(`refuses more than ${MAX_SENDER_KEY_STATES} states and damaged bytes with INVALID_STATE only`, () => {
    const one = serializeSenderKeyRecord({ states: [state()] }).expose();
    expect(outcome(() => deserializeSenderKeyRecord(concatBytes(...Array.from({ length: MAX_SENDER_KEY_STATES }, () => one))))).toBe('decoded');
    expect(outcome(() => deserializeSenderKeyRecord(concatBytes(...Array.from({ length: MAX_SENDER_KEY_STATES + 1 }, () => one))))).toBe('INVALID_STATE');
    fc.assert(
      fc.property(mutations, (changes) => {
        const input = applyMutations(one, changes);
        try {
          const again = serializeSenderKeyRecord(deserializeSenderKeyRecord(input)).expose();
          expect(serializeSenderKeyRecord(deserializeSenderKeyRecord(again)).expose()).toEqual(again);
        } catch (error) {
          if (!isProtocolError(error, 'INVALID_STATE')) throw error;
        }
      }),
      { numRuns: 1_000 },
    );
  });
});
