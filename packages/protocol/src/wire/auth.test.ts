/**
 * Login challenges: a device's signature answers one challenge, for one
 * username and one device, under one key, and nothing else.
 */
import { serializePublicKey, xeddsaVerify } from '@parley/crypto';
import { createNodeProvider } from '@parley/crypto/node';
import { beforeAll, describe, expect, it } from 'vitest';

import { asyncOutcome } from '../../../../testing/fuzz.js';
import { generateIdentityKeyPair, generateKyberPreKey, generateSignedPreKey, verifyPreKeySignature, type IdentityKeyPair } from '../keys.js';
import { AUTH_CHALLENGE_LENGTH, signAuthChallenge, verifyAuthChallenge } from './auth.js';
import { signDeviceList, verifyDeviceList } from './deviceList.js';

const provider = createNodeProvider();

let auth: IdentityKeyPair;
let other: IdentityKeyPair;
let challenge: Uint8Array;
let signature: Uint8Array;

beforeAll(async () => {
  auth = await generateIdentityKeyPair(provider);
  other = await generateIdentityKeyPair(provider);
  challenge = provider.randomBytes(AUTH_CHALLENGE_LENGTH);
  signature = await signAuthChallenge(provider, auth.privateKey, 'alice', 2, challenge);
});

const verify = (overrides: { key?: Uint8Array; username?: string; deviceId?: number; challenge?: Uint8Array; signature?: Uint8Array }) =>
  verifyAuthChallenge(
    provider,
    overrides.key ?? auth.publicKey,
    overrides.username ?? 'alice',
    overrides.deviceId ?? 2,
    overrides.challenge ?? challenge,
    overrides.signature ?? signature,
  );

describe('auth challenges', () => {
  it('sign and verify round trip', async () => {
    expect(signature.length).toBe(64);
    expect(await verify({})).toBe(true);
  });

  it('signs the documented payload: "Parley auth v1" ‖ 0x00 ‖ len(username) ‖ username ‖ u32be(device_id) ‖ challenge', async () => {
    const utf8 = (text: string) => new TextEncoder().encode(text);
    const payload = Uint8Array.from([...utf8('Parley auth v1'), 0x00, 5, ...utf8('alice'), 0, 0, 0, 2, ...challenge]);
    expect(await xeddsaVerify(provider, auth.publicKey.subarray(1), payload, signature)).toBe(true);
  });

  it('a signature does not verify for another username', async () => {
    for (const username of ['bob', 'alicf', 'alic', 'alice_', 'Alice']) expect(await verify({ username }), username).toBe(false);
  });

  it('a signature does not verify for another device id', async () => {
    for (const deviceId of [1, 3, 0x0200, 0x0102]) expect(await verify({ deviceId }), String(deviceId)).toBe(false);
  });

  it('a signature does not verify for another challenge', async () => {
    for (let bit = 0; bit < challenge.length * 8; bit += 7) {
      const tampered = challenge.slice();
      tampered[bit >> 3]! ^= 1 << (bit & 7);
      expect(await verify({ challenge: tampered }), `bit ${bit}`).toBe(false);
    }
    expect(await verify({ challenge: challenge.subarray(1) })).toBe(false);
    expect(await verify({ challenge: provider.randomBytes(AUTH_CHALLENGE_LENGTH) })).toBe(false);
  });

  it('a signature does not verify under another key', async () => {
    expect(await verify({ key: other.publicKey })).toBe(false);
    const theirs = await signAuthChallenge(provider, other.privateKey, 'alice', 2, challenge);
    expect(await verify({ signature: theirs })).toBe(false);
    expect(await verify({ key: other.publicKey, signature: theirs })).toBe(true);
  });

  it('the fields are framed: bytes cannot move from the username into the device id or the challenge', async () => {
    // Without the length prefix, ("alice_", 1, c) and ("alice", 0x5f000000, 0x01 ‖ c) would sign the same bytes.
    const signed = await signAuthChallenge(provider, auth.privateKey, 'alice_', 1, challenge);
    expect(await verify({ username: 'alice_', deviceId: 1, signature: signed })).toBe(true);
    expect(await verify({ username: 'alice', deviceId: 0x5f00_0000, challenge: Uint8Array.from([1, ...challenge]), signature: signed })).toBe(false);
  });

  it('an auth signature is no prekey signature over the challenge', async () => {
    expect(await verifyPreKeySignature(provider, auth.publicKey, challenge, signature)).toBe(false);
  });

  it('with the identity key as its auth key, no challenge the server picks gets a device list or prekey signed, nor do those answer one (rows 3 and 8)', async () => {
    const identity = await generateIdentityKeyPair(provider);
    const list = await signDeviceList(provider, identity, { username: 'alice', version: 1, devices: [{ deviceId: 2, registrationId: 7, authKey: identity.publicKey }] });
    const signedPreKey = await generateSignedPreKey(provider, identity, 1, 0);
    const kyberPreKey = await generateKyberPreKey(provider, identity, 1, 0);
    const signedByIdentity: [string, Uint8Array, Uint8Array][] = [
      ['a device list', list.list, list.signature],
      ['a signed prekey', serializePublicKey(signedPreKey.publicKey), signedPreKey.signature],
      ['a Kyber prekey', kyberPreKey.publicKey, kyberPreKey.signature],
    ];
    for (const [what, bytes, signature] of signedByIdentity) {
      // The server chooses the challenge: it makes it the bytes of another structure.
      const answer = await signAuthChallenge(provider, identity.privateKey, 'alice', 2, bytes);
      expect(await verifyPreKeySignature(provider, identity.publicKey, bytes, answer), what).toBe(false);
      expect(await asyncOutcome(() => verifyDeviceList(provider, identity.publicKey, { list: bytes, signature: answer })), what).toBe('INVALID_SIGNATURE');
      expect(await verifyAuthChallenge(provider, identity.publicKey, 'alice', 2, bytes, signature), what).toBe(false);
    }
  });

  it('refuses an auth key that is not a serialized Curve25519 key', async () => {
    expect(await asyncOutcome(() => verify({ key: auth.publicKey.subarray(1) }))).toBe('INVALID_KEY');
  });
});
