/**
 * Accounts, login and linking against a real server process, on each engine:
 * what registration checks, that every failed login looks the same, and that
 * only the identity key's signature changes which devices an account has.
 */
import { describe, expect, it } from 'vitest';

import { serializePublicKey } from '@parley/crypto';
import {
  generateIdentityKeyPair,
  generateKyberPreKey,
  generateRegistrationId,
  generateSignedPreKey,
  signAuthChallenge,
  signDeviceList,
  verifyDeviceList,
  type DeviceEntry,
  type IdentityKeyPair,
} from '@parley/protocol';

import { engineCases, useServer } from '../../../../testing/server.js';
import { b64, Connection, fromB64, http, provider, TestAccount, TestDevice, type HttpResult } from '../../../../testing/device.js';
import { CloseCode } from '../errors.js';

/** Any error message: clients branch on the code, people read the message. */
const anyText: unknown = expect.any(String);

/** A device's signed prekey and last-resort Kyber key as the API takes them, signed by `signer`. */
async function deviceKeys(signer: IdentityKeyPair) {
  const signed = await generateSignedPreKey(provider, signer, 1, 0);
  const lastResort = await generateKyberPreKey(provider, signer, 1, 0, { lastResort: true });
  return {
    signedPreKey: { keyId: 1, publicKey: b64(serializePublicKey(signed.publicKey)), signature: b64(signed.signature) },
    kyberLastResortKey: { keyId: 1, publicKey: b64(lastResort.publicKey), signature: b64(lastResort.signature) },
  };
}

async function signList(signer: IdentityKeyPair, username: string, version: number, devices: DeviceEntry[]) {
  const signed = await signDeviceList(provider, signer, { username, version, devices });
  return { list: b64(signed.list), signature: b64(signed.signature) };
}

/** A new entry for a device list, with its auth key pair. */
async function newEntry(deviceId: number): Promise<{ entry: DeviceEntry; auth: IdentityKeyPair }> {
  const auth = await generateIdentityKeyPair(provider);
  return { entry: { deviceId, registrationId: generateRegistrationId(provider), authKey: auth.publicKey }, auth };
}

interface Tamper {
  listSigner?: IdentityKeyPair;
  preKeySigner?: IdentityKeyPair;
  lastResortSigner?: IdentityKeyPair;
  listName?: string;
  devices?: (first: DeviceEntry) => DeviceEntry[];
}

/** A registration body for `username`: valid, unless `tamper` says otherwise. */
async function registration(username: string, tamper: Tamper = {}) {
  const identity = await generateIdentityKeyPair(provider);
  const { entry } = await newEntry(1);
  const deviceList = await signList(tamper.listSigner ?? identity, tamper.listName ?? username, 1, tamper.devices?.(entry) ?? [entry]);
  const { signedPreKey } = await deviceKeys(tamper.preKeySigner ?? identity);
  const { kyberLastResortKey } = await deviceKeys(tamper.lastResortSigner ?? identity);
  return { identity, body: { identityKey: b64(identity.publicKey), deviceList, signedPreKey, kyberLastResortKey } };
}

function expectError(result: HttpResult, status: number, code: string): void {
  expect({ status: result.status, body: result.body }).toEqual({ status, body: { error: { code, message: anyText } } });
}

describe.each(engineCases)('accounts, login and linking on $title', (engineCase) => {
  const { available } = engineCase;
  const suite = useServer(engineCase);
  let counter = 0;
  const name = (prefix: string) => `${prefix}_${++counter}`;
  const register = (body: unknown) => http<{ username: string; deviceId: number }>(suite.server.url, 'POST', '/v1/accounts', { body });

  /** A GET with a raw Authorization header; the body as the exact text sent. */
  async function rawGet(path: string, authorization?: string): Promise<{ status: number; text: string }> {
    const response = await fetch(`${suite.server.url}${path}`, { headers: authorization === undefined ? {} : { authorization } });
    return { status: response.status, text: await response.text() };
  }

  it.skipIf(!available)('registers an account and its first device under the canonical username', async () => {
    const username = name('carol');
    const { identity, body } = await registration(username);
    const created = await register(body);
    expect({ status: created.status, body: created.body }).toEqual({ status: 201, body: { username, deviceId: 1 } });

    // Found by any case of its name, and always answered with the canonical one.
    const viewer = await TestAccount.register(suite.server.url, name('viewer'));
    const found = await http<{ username: string; identityKey: string; deviceList: { list: string; signature: string } }>(
      suite.server.url,
      'GET',
      `/v1/accounts/${username.toUpperCase()}`,
      { token: await viewer.devices[0]!.login() },
    );
    expect(found.status).toBe(200);
    expect(found.body.username).toBe(username);
    expect(found.body.identityKey).toBe(body.identityKey);
    expect(found.body.deviceList).toEqual(body.deviceList);
    const list = await verifyDeviceList(provider, identity.publicKey, {
      list: fromB64(found.body.deviceList.list),
      signature: fromB64(found.body.deviceList.signature),
    });
    expect(list).toMatchObject({ username, version: 1, devices: [{ deviceId: 1 }] });

    // A list must name the account canonically: a client folds before it signs.
    const other = name('dave');
    expectError(await register((await registration(other, { listName: other.toUpperCase() })).body), 400, 'BAD_REQUEST');
  });

  it.skipIf(!available)('refuses a taken username with 409 USERNAME_TAKEN and keeps the first account', async () => {
    const username = name('erin');
    const first = await registration(username);
    expect((await register(first.body)).status).toBe(201);
    expectError(await register((await registration(username)).body), 409, 'USERNAME_TAKEN');
    // Racing for a free name: exactly one wins.
    const contested = name('erin');
    const racers = await Promise.all(Array.from({ length: 5 }, () => registration(contested)));
    const answers = await Promise.all(racers.map((r) => register(r.body)));
    expect(answers.map((a) => a.status).sort((a, b) => a - b)).toEqual([201, 409, 409, 409, 409]);
    const viewer = await TestAccount.register(suite.server.url, name('viewer'));
    const found = await http<{ identityKey: string }>(suite.server.url, 'GET', `/v1/accounts/${username}`, { token: await viewer.devices[0]!.login() });
    expect(found.body.identityKey).toBe(first.body.identityKey);
  });

  it.skipIf(!available)('refuses a device list or prekey signed by another key, and a list that is not exactly device 1', async () => {
    const username = name('frank');
    const stranger = await generateIdentityKeyPair(provider);
    expectError(await register((await registration(username, { listSigner: stranger })).body), 400, 'INVALID_SIGNATURE');
    expectError(await register((await registration(username, { preKeySigner: stranger })).body), 400, 'INVALID_SIGNATURE');
    expectError(await register((await registration(username, { lastResortSigner: stranger })).body), 400, 'INVALID_SIGNATURE');

    const second = await newEntry(2);
    const notOne = await registration(username, { devices: (first) => [{ ...first, deviceId: 2 }] });
    expectError(await register(notOne.body), 400, 'BAD_REQUEST');
    const two = await registration(username, { devices: (first) => [first, second.entry] });
    expectError(await register(two.body), 400, 'BAD_REQUEST');

    // Nothing of a refused registration was kept: the name is still free.
    expect((await register((await registration(username)).body)).status).toBe(201);
  });

  it.skipIf(!available)('answers malformed bodies with 400 BAD_REQUEST and an error object, storing nothing', async () => {
    const username = name('grace');
    const { body } = await registration(username);
    // 64 bytes end "…xy==": y holds 2 bits of the last byte and 4 unused ones; setting one decodes to the same bytes.
    const signature = body.signedPreKey.signature;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const nonCanonical = `${signature.slice(0, -3)}${alphabet[alphabet.indexOf(signature.at(-3)!) + 1]!}==`;
    const malformed: { rawBody?: string; body?: unknown }[] = [
      { rawBody: '{"identityKey": "' },
      { rawBody: 'not json at all' },
      { body: { ...body, identityKey: 'not*base64!' } },
      { body: { ...body, identityKey: b64(new Uint8Array(32)) } },
      { body: { ...body, signedPreKey: { ...body.signedPreKey, signature: nonCanonical } } },
      { body: { ...body, signedPreKey: { ...body.signedPreKey, signature: signature.slice(0, -2) } } },
      { body: (await registration(username, { devices: () => [] })).body }, // signed, but lists no device
      { body: { ...body, extra: true } },
      { body: { ...body, signedPreKey: { ...body.signedPreKey, extra: 1 } } },
      { body: { ...body, deviceList: { ...body.deviceList, version: 9 } } },
      { body: { identityKey: body.identityKey, deviceList: body.deviceList, signedPreKey: body.signedPreKey } },
    ];
    for (const request of malformed) {
      const result = await http(suite.server.url, 'POST', '/v1/accounts', request);
      expect({ request, status: result.status, body: result.body }).toEqual({
        request,
        status: 400,
        body: { error: { code: 'BAD_REQUEST', message: anyText } },
      });
    }
    expect((await register(body)).status).toBe(201);
  });

  it.skipIf(!available)('answers every failed login with the same 401, and takes each challenge once', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const alice2 = await alice.link(alice.devices[0]!);
    const [alice1, bob1] = [alice.devices[0]!, bob.devices[0]!];
    const challenge = async (username: string, deviceId: number) => {
      const result = await http<{ challenge: string }>(suite.server.url, 'POST', '/v1/auth/challenge', { body: { username, deviceId } });
      expect(result.status).toBe(200);
      return result.body.challenge;
    };
    const sign = async (by: IdentityKeyPair, username: string, deviceId: number, c: string) =>
      b64(await signAuthChallenge(provider, by.privateKey, username, deviceId, fromB64(c)));
    const login = (username: string, deviceId: number, c: string, signature: string) =>
      http<{ token: string }>(suite.server.url, 'POST', '/v1/auth/token', { body: { username, deviceId, challenge: c, signature } });

    const failures: HttpResult[] = [];
    let c = await challenge(alice.username, 1);
    failures.push(await login(alice.username, 1, c, b64(provider.randomBytes(64))));
    // Failing used the challenge up: the right signature now fails too.
    failures.push(await login(alice.username, 1, c, await sign(alice1.auth, alice.username, 1, c)));
    c = await challenge(alice.username, 1);
    failures.push(await login(alice.username, 1, c, await sign(alice2.auth, alice.username, 1, c)));
    c = await challenge(alice.username, 2);
    failures.push(await login(alice.username, 1, c, await sign(alice1.auth, alice.username, 1, c)));
    c = await challenge(bob.username, 1);
    failures.push(await login(alice.username, 1, c, await sign(alice1.auth, alice.username, 1, c)));
    failures.push(await login(bob.username, 1, c, await sign(alice1.auth, bob.username, 1, c)));
    const nobody = name('nobody');
    c = await challenge(nobody, 1);
    failures.push(await login(nobody, 1, c, await sign(alice1.auth, nobody, 1, c)));
    c = await challenge(alice.username, 7);
    failures.push(await login(alice.username, 7, c, await sign(alice1.auth, alice.username, 7, c)));

    // A good login works once; the same challenge and signature again fail.
    c = await challenge(bob.username, 1);
    const signature = await sign(bob1.auth, bob.username, 1, c);
    const good = await login(bob.username, 1, c, signature);
    expect(good.status).toBe(200);
    failures.push(await login(bob.username, 1, c, signature));

    expectError(failures[0]!, 401, 'UNAUTHORIZED');
    for (const failure of failures) expect({ status: failure.status, body: failure.body }).toEqual({ status: 401, body: failures[0]!.body });
    const keys = await http(suite.server.url, 'GET', '/v1/keys', { token: good.body.token });
    expect({ status: keys.status, body: keys.body }).toEqual({ status: 200, body: { preKeys: 0, kyberPreKeys: 0 } });
  });

  it.skipIf(!available)('refuses a login signed with the identity key, which every linked device holds: only the device\'s own auth key logs it in (row 3)', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const login = async (signer: IdentityKeyPair) => {
      const { body } = await http<{ challenge: string }>(suite.server.url, 'POST', '/v1/auth/challenge', { body: { username: alice.username, deviceId: 1 } });
      const signature = await signAuthChallenge(provider, signer.privateKey, alice.username, 1, fromB64(body.challenge));
      return http(suite.server.url, 'POST', '/v1/auth/token', { body: { username: alice.username, deviceId: 1, challenge: body.challenge, signature: b64(signature) } });
    };
    expectError(await login(alice.identity), 401, 'UNAUTHORIZED');
    expect((await login(alice.devices[0]!.auth)).status).toBe(200);
  });

  it.skipIf(!available)('refuses missing, garbage, forged and truncated bearer tokens with the same 401', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const token = await alice.devices[0]!.login();
    const bytes = new Uint8Array(Buffer.from(token, 'base64url'));
    const altered = (index: number) => {
      const copy = bytes.slice();
      copy[index]! ^= 0x01;
      return Buffer.from(copy).toString('base64url');
    };
    const attempts = [
      undefined,
      'Bearer',
      'Bearer garbage',
      `Bearer ${'A'.repeat(200)}`,
      `Basic ${token}`,
      `Bearer ${token}x`,
      `Bearer ${token.slice(0, -4)}`,
      `Bearer ${altered(0)}`, // version
      `Bearer ${altered(8)}`, // account id, with the old MAC
      `Bearer ${altered(12)}`, // device id
      `Bearer ${altered(20)}`, // expiry
      `Bearer ${altered(bytes.length - 1)}`, // MAC
    ];
    const results = [];
    for (const authorization of attempts) results.push(await rawGet('/v1/keys', authorization));
    expect(results[0]!.status).toBe(401);
    expect(JSON.parse(results[0]!.text)).toEqual({ error: { code: 'UNAUTHORIZED', message: anyText } });
    for (const [i, result] of results.entries()) expect({ attempt: attempts[i], ...result }).toEqual({ attempt: attempts[i], ...results[0]! });
    expect((await rawGet('/v1/keys', `Bearer ${token}`)).status).toBe(200);
  });

  it.skipIf(!available)('a link token adds exactly the granted device, keeping the others unchanged, once', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const alice1 = alice.devices[0]!;
    const grant = await http<{ linkToken: string; deviceId: number; expiresAt: number }>(suite.server.url, 'POST', '/v1/devices/link', {
      token: await alice1.login(),
    });
    expect(grant.status).toBe(200);
    expect(grant.body.deviceId).toBe(2);
    const { entry, auth } = await newEntry(grant.body.deviceId);
    const keys = await deviceKeys(alice.identity);
    const link = async (deviceList: { list: string; signature: string }) =>
      http(suite.server.url, 'POST', '/v1/devices', { body: { linkToken: grant.body.linkToken, deviceList, ...keys } });
    const sign = (version: number, devices: DeviceEntry[]) => signList(alice.identity, alice.username, version, devices);
    const first = alice1.entry();

    expectError(await link(await sign(2, [entry])), 400, 'BAD_REQUEST'); // drops device 1
    expectError(await link(await sign(2, [{ ...first, registrationId: (first.registrationId % 16000) + 1 }, entry])), 400, 'BAD_REQUEST');
    expectError(await link(await sign(2, [{ ...first, authKey: entry.authKey }, entry])), 400, 'BAD_REQUEST');
    expectError(await link(await sign(2, [first, { ...entry, deviceId: 3 }])), 400, 'BAD_REQUEST'); // not the granted id
    expectError(await link(await sign(2, [first, entry, (await newEntry(3)).entry])), 400, 'BAD_REQUEST'); // two at once
    expectError(await link(await sign(1, [first, entry])), 409, 'STALE_DEVICE_LIST');
    expectError(await link(await signList(auth, alice.username, 2, [first, entry])), 400, 'INVALID_SIGNATURE');

    // None of those used the token up. Two right lists at once (two devices scanning one code): exactly one links.
    const rival = await newEntry(grant.body.deviceId);
    const lists = [await sign(2, [first, entry]), await sign(2, [first, rival.entry])];
    const answers = await Promise.all(lists.map(link));
    expect(answers.map((a) => a.status).sort((a, b) => a - b)).toEqual([201, 401]);
    const won = answers.findIndex((a) => a.status === 201);
    expect(answers[won]!.body).toEqual({ username: alice.username, deviceId: 2 });
    expectError(answers[1 - won]!, 401, 'UNAUTHORIZED');
    expectError(await link(await sign(3, [first, entry])), 401, 'UNAUTHORIZED');
    const [winner, loser, good] = won === 0 ? [{ entry, auth }, rival, lists[0]!] : [rival, { entry, auth }, lists[1]!];

    // The winner logs in as device 2; the loser's key is not device 2's.
    const alice2 = new TestDevice(suite.server.url, alice, 2, winner.entry.registrationId, winner.auth);
    alice.devices.push(alice2);
    alice.version = 2;
    expect((await http(suite.server.url, 'GET', '/v1/keys', { token: await alice2.login() })).status).toBe(200);
    await expect(new TestDevice(suite.server.url, alice, 2, loser.entry.registrationId, loser.auth).login()).rejects.toThrow(/401/);

    const viewer = await TestAccount.register(suite.server.url, name('viewer'));
    const found = await http<{ identityKey: string; deviceList: { list: string; signature: string } }>(
      suite.server.url,
      'GET',
      `/v1/accounts/${alice.username}`,
      { token: await viewer.devices[0]!.login() },
    );
    expect(found.body.deviceList).toEqual(good);
    const list = await verifyDeviceList(provider, fromB64(found.body.identityKey), {
      list: fromB64(found.body.deviceList.list),
      signature: fromB64(found.body.deviceList.signature),
    });
    expect(found.body.identityKey).toBe(b64(alice.identity.publicKey));
    expect(list).toEqual({ username: alice.username, version: 2, devices: [first, winner.entry] });
  });

  it.skipIf(!available)('removing a device revokes its token and closes its connection; an update cannot add a device', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const alice1 = alice.devices[0]!;
    const alice2 = await alice.link(alice1);
    const alice3 = await alice.link(alice1);
    const [token1, token2, token3, bobToken] = await Promise.all([alice1.login(), alice2.login(), alice3.login(), bob.devices[0]!.login()]);
    const connection = await alice2.connect(suite.server.wsUrl);
    const put = async (deviceList: { list: string; signature: string }) =>
      http<{ version: number; removed: number[] }>(suite.server.url, 'PUT', '/v1/devices', { token: token1, body: { deviceList } });
    const [d1, d2, d3] = [alice1.entry(), alice2.entry(), alice3.entry()];

    expectError(await put(await alice.sign([d1, d2, d3, (await newEntry(4)).entry], 4)), 400, 'BAD_REQUEST');
    expectError(await put(await alice.sign([d1, d2, (await newEntry(4)).entry], 4)), 400, 'BAD_REQUEST');
    expectError(await put(await alice.sign([d1, d2, { ...d3, registrationId: (d3.registrationId % 16000) + 1 }], 4)), 400, 'BAD_REQUEST');
    expectError(await put(await alice.sign([d1, d3], 3)), 409, 'STALE_DEVICE_LIST');
    expectError(await put(await signList(alice2.auth, alice.username, 4, [d1, d3])), 400, 'INVALID_SIGNATURE');
    expect((await http(suite.server.url, 'GET', '/v1/keys', { token: token2 })).status).toBe(200);

    const removed = await put(await alice.sign([d1, d3], 4));
    expect({ status: removed.status, body: removed.body }).toEqual({ status: 200, body: { version: 4, removed: [2] } });
    alice.devices.splice(alice.devices.indexOf(alice2), 1);
    alice.version = 4;

    expect(await connection.closed).toMatchObject({ code: CloseCode.UNAUTHORIZED });
    expectError(await http(suite.server.url, 'GET', '/v1/keys', { token: token2 }), 401, 'UNAUTHORIZED');
    await expect(alice2.login()).rejects.toThrow(/401/);
    const again = await Connection.open(suite.server.wsUrl);
    again.send({ kind: 'auth', token: new Uint8Array(Buffer.from(token2, 'base64url')) });
    expect(await again.closed).toMatchObject({ code: CloseCode.UNAUTHORIZED });

    // The others are untouched, and everyone sees devices 1 and 3 only.
    expect((await http(suite.server.url, 'GET', '/v1/keys', { token: token3 })).status).toBe(200);
    const bundles = await http<{ devices: { deviceId: number }[] }>(suite.server.url, 'GET', `/v1/keys/${alice.username}/*`, { token: bobToken });
    expect(bundles.body.devices.map((d) => d.deviceId)).toEqual([1, 3]);
    expect((await http(suite.server.url, 'GET', `/v1/keys/${alice.username}/2`, { token: bobToken })).status).toBe(404);
    const found = await http<{ deviceList: { list: string; signature: string } }>(suite.server.url, 'GET', `/v1/accounts/${alice.username}`, {
      token: bobToken,
    });
    const list = await verifyDeviceList(provider, alice.identity.publicKey, {
      list: fromB64(found.body.deviceList.list),
      signature: fromB64(found.body.deviceList.signature),
    });
    expect(list).toEqual({ username: alice.username, version: 4, devices: [d1, d3] });
  });
});
