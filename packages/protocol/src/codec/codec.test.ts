/**
 * The decoders of untrusted bytes (messages, session and key records, scanned
 * safety numbers): round trips for every message type, and
 * fuzzing (random bytes and mutations of real messages) showing that whatever
 * the input, they either decode or throw a ProtocolError — nothing else.
 */
import { createNodeProvider } from '@parley/crypto/node';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { parleyPeer } from '../../../../testing/peers.js';
import { compareScannable, createFingerprint, isProtocolError, MessageType } from '../index.js';
import {
  decodePreKeySignalMessage,
  decodeSignalMessage,
  encodePreKeySignalMessage,
  MAC_LENGTH,
  type PreKeySignalMessage,
} from './messages.js';
import {
  deserializeIdentityKeyPair,
  deserializeKyberPreKeyRecord,
  deserializePreKeyRecord,
  deserializeSignedPreKeyRecord,
} from './keyRecords.js';
import { ProtoWriter, readProto } from './protobuf.js';
import { deserializeSessionRecord, serializeSessionRecord } from './sessionRecord.js';

const provider = createNodeProvider();

/** Runs `decode` and fails the test on anything but success or a ProtocolError. */
function onlyTypedErrors(decode: () => unknown): void {
  try {
    decode();
  } catch (error) {
    if (!isProtocolError(error)) throw new Error(`decoder threw a non-ProtocolError: ${String(error)}`, { cause: error });
  }
}

async function realTraffic() {
  const [alice, bob] = [await parleyPeer(provider, 'alice'), await parleyPeer(provider, 'bob')];
  await alice.startSession(bob, await bob.bundle());
  const preKey = await alice.encrypt(bob.address, new TextEncoder().encode('first'));
  await bob.decrypt(alice.address, preKey);
  const whisper = await bob.encrypt(alice.address, new TextEncoder().encode('reply'));
  await alice.decrypt(bob.address, whisper);
  const record = (await alice.stores.sessions.loadSession(bob.address))!;
  const fingerprint = await createFingerprint(provider, { id: Uint8Array.of(1), identityKey: alice.identityKey }, { id: Uint8Array.of(2), identityKey: bob.identityKey }, { iterations: 2 });
  return { preKey, whisper, record: serializeSessionRecord(record).expose(), scannable: fingerprint.scannable };
}

describe('codecs', () => {
  it('round-trip every message type and session records', async () => {
    const { preKey, whisper, record } = await realTraffic();
    expect(preKey.type).toBe(MessageType.PreKey);
    const parsed: PreKeySignalMessage = decodePreKeySignalMessage(preKey.body);
    const { version, serialized, ...fields } = parsed;
    expect([version, serialized.length]).toEqual([4, preKey.body.length]);
    expect(Buffer.from(encodePreKeySignalMessage(fields).serialized).equals(Buffer.from(preKey.body))).toBe(true);
    const signal = decodeSignalMessage(whisper.body);
    expect(signal.version).toBe(4);
    expect(signal.serialized.length).toBe(whisper.body.length);
    expect(Buffer.from(serializeSessionRecord(deserializeSessionRecord(record)).expose()).equals(Buffer.from(record))).toBe(true);
  });

  it('write protobuf fields in tag order with canonical varints', () => {
    const bytes = new ProtoWriter().uint32(1, 300).bytes(2, Uint8Array.of(7)).uint64(3, 2 ** 40).finish();
    expect(Buffer.from(bytes).toString('hex')).toBe('08ac02' + '120107' + '18' + '808080808020');
    const fields = readProto(bytes);
    expect(fields.get(1)).toBe(300);
    expect(fields.get(3)).toBe(2 ** 40);
  });

  it('throw only ProtocolError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2_000 }), (bytes) => {
        onlyTypedErrors(() => decodeSignalMessage(bytes));
        onlyTypedErrors(() => decodePreKeySignalMessage(bytes));
        onlyTypedErrors(() => deserializeSessionRecord(bytes));
        onlyTypedErrors(() => readProto(bytes));
        onlyTypedErrors(() => deserializePreKeyRecord(bytes));
        onlyTypedErrors(() => deserializeSignedPreKeyRecord(bytes));
        onlyTypedErrors(() => deserializeKyberPreKeyRecord(bytes, { lastResort: false }));
        onlyTypedErrors(() => deserializeIdentityKeyPair(bytes));
      }),
      { numRuns: 3_000 },
    );
  });

  it('throw only ProtocolError on mutations of real messages, records and scanned codes', async () => {
    const traffic = await realTraffic();
    const decoders: [Uint8Array, (b: Uint8Array) => unknown][] = [
      [traffic.whisper.body, decodeSignalMessage],
      [traffic.preKey.body, decodePreKeySignalMessage],
      [traffic.record, deserializeSessionRecord],
      [traffic.scannable, (b) => compareScannable(traffic.scannable, b)],
    ];
    const mutation = fc.record({
      at: fc.nat(),
      byte: fc.integer({ min: 0, max: 255 }),
      cut: fc.nat(),
      insert: fc.uint8Array({ maxLength: 8 }),
    });
    for (const [original, decode] of decoders) {
      fc.assert(
        fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (mutations) => {
          let bytes = original.slice();
          for (const m of mutations) {
            const at = m.at % (bytes.length + 1);
            bytes[at % bytes.length] = m.byte;
            if (m.cut % 5 === 0) bytes = bytes.subarray(0, at);
            if (m.insert.length > 0) bytes = Uint8Array.from([...bytes.subarray(0, at), ...m.insert, ...bytes.subarray(at)]);
          }
          onlyTypedErrors(() => decode(bytes));
        }),
        { numRuns: 1_500 },
      );
    }
  });

  it('refuse an oversized message before parsing it', () => {
    const huge = new Uint8Array(9 * 1024 * 1024);
    huge[0] = 0x44;
    expect(() => decodeSignalMessage(huge)).toThrow(expect.objectContaining({ code: 'INVALID_ENCODING' }));
    expect(MAC_LENGTH).toBe(8);
  });
});

describe('decrypt entry points', () => {
  it('report undecodable input as a rejected promise, never a synchronous throw', async () => {
    const { decryptSignalMessage, decryptPreKeySignalMessage, inMemoryStores, generateIdentityKeyPair } = await import('../index.js');
    const stores = inMemoryStores(await generateIdentityKeyPair(provider), 1);
    const address = { name: 'x', deviceId: 1 };
    for (const decrypt of [decryptSignalMessage, decryptPreKeySignalMessage]) {
      let promise: Promise<unknown> | undefined;
      expect(() => (promise = decrypt(provider, stores, address, Uint8Array.of(0x13)))).not.toThrow();
      expect(isProtocolError(await promise!.catch((e: unknown) => e))).toBe(true);
    }
  });
});
