/**
 * The decoders of untrusted bytes (messages, session and key records): round
 * trips for every message type, and the size limit checked before parsing.
 * Fuzzing them (random bytes, mutations of real messages, records and scanned
 * codes) is in testing/fuzz, with every other decoder.
 */
import { createNodeProvider } from '@parley/crypto/node';
import { describe, expect, it } from 'vitest';

import { parleyPeer } from '../../../../testing/peers.js';
import { isProtocolError, MessageType } from '../index.js';
import {
  decodePreKeySignalMessage,
  decodeSignalMessage,
  encodePreKeySignalMessage,
  MAC_LENGTH,
  type PreKeySignalMessage,
} from './messages.js';
import { ProtoWriter, readProto } from './protobuf.js';
import { deserializeSessionRecord, serializeSessionRecord } from './sessionRecord.js';

const provider = createNodeProvider();

async function realTraffic() {
  const [alice, bob] = [await parleyPeer(provider, 'alice'), await parleyPeer(provider, 'bob')];
  await alice.startSession(bob, await bob.bundle());
  const preKey = await alice.encrypt(bob.address, new TextEncoder().encode('first'));
  await bob.decrypt(alice.address, preKey);
  const whisper = await bob.encrypt(alice.address, new TextEncoder().encode('reply'));
  await alice.decrypt(bob.address, whisper);
  const record = (await alice.stores.sessions.loadSession(bob.address))!;
  return { preKey, whisper, record: serializeSessionRecord(record).expose() };
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
