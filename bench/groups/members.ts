/**
 * Group members for the bench: real accounts with two devices each on a real
 * server, every device keeping its private keys (identity, signed prekey,
 * Kyber last-resort prekey) in in-memory protocol stores so that it can really
 * decrypt, and each on its own raw WebSocket.
 *
 * testing/device.ts registers the same way but drops the private prekeys
 * (its devices never decrypt), so this file repeats its few HTTP steps.
 * Every device talks to the server as if from its own address
 * (`X-Forwarded-For`, read because the server runs with `--trust-proxy
 * 127.0.0.1`), as members of a real group would: the per-address limits on
 * login challenges then bound nothing here.
 */
import { KemType, serializePublicKey } from '@parley/crypto';
import {
  generateIdentityKeyPair,
  generateKyberPreKey,
  generateRegistrationId,
  generateSignedPreKey,
  InMemorySenderKeyStore,
  inMemoryStores,
  signAuthChallenge,
  signDeviceList,
  type DeviceEntry,
  type IdentityKeyPair,
  type PreKeyBundle,
  type ProtocolAddress,
  type ProtocolStores,
} from '@parley/protocol';
import type WebSocket from 'ws';

import { b64, fromB64, http, provider } from '../../testing/device.js';
import { inBatches as runInBatches } from '../lib/batches.js';
import { openDrained } from '../lib/socket.js';

/** Registrations, links and logins run this many at a time. */
const SETUP_CONCURRENCY = 16;

/** Runs `task` for 0…count−1, SETUP_CONCURRENCY at a time, with progress lines. */
export const inBatches = <T>(count: number, what: string, task: (i: number) => Promise<T>): Promise<T[]> =>
  runInBatches(count, task, { concurrency: SETUP_CONCURRENCY, what });
const CONNECT_TIMEOUT_MS = 60_000;

export interface Device {
  readonly username: string;
  readonly deviceId: number;
  readonly registrationId: number;
  readonly address: ProtocolAddress;
  readonly auth: IdentityKeyPair;
  /** The address it claims to the server (X-Forwarded-For). */
  readonly clientAddress: string;
  readonly stores: ProtocolStores;
  readonly senderKeys: InMemorySenderKeyStore;
  socket?: WebSocket;
}

export interface Member {
  readonly username: string;
  readonly identity: IdentityKeyPair;
  readonly devices: readonly [Device, Device];
}


/** A device's keys, its stores holding the private halves, and what the API takes. */
async function newDevice(username: string, deviceId: number, identity: IdentityKeyPair, clientAddress: string) {
  const now = Date.now();
  const auth = await generateIdentityKeyPair(provider);
  const registrationId = generateRegistrationId(provider);
  const signed = await generateSignedPreKey(provider, identity, 1, now);
  const lastResort = await generateKyberPreKey(provider, identity, 1, now, { lastResort: true, type: KemType.Kyber1024 });
  const stores = inMemoryStores(identity, registrationId);
  stores.preKeys.storeSignedPreKey(signed);
  stores.preKeys.storeKyberPreKey(lastResort);
  const device: Device = {
    username,
    deviceId,
    registrationId,
    address: { name: username, deviceId },
    auth,
    clientAddress,
    stores,
    senderKeys: new InMemorySenderKeyStore(),
  };
  const entry: DeviceEntry = { deviceId, registrationId, authKey: auth.publicKey };
  const upload = {
    signedPreKey: { keyId: signed.id, publicKey: b64(serializePublicKey(signed.publicKey)), signature: b64(signed.signature) },
    kyberLastResortKey: { keyId: lastResort.id, publicKey: b64(lastResort.publicKey), signature: b64(lastResort.signature) },
  };
  return { device, entry, upload };
}

const fromAddress = (device: { clientAddress: string }) => ({ 'x-forwarded-for': device.clientAddress });

async function signedList(member: { username: string; identity: IdentityKeyPair }, entries: DeviceEntry[], version: number) {
  const signed = await signDeviceList(provider, member.identity, { username: member.username, version, devices: entries });
  return { list: b64(signed.list), signature: b64(signed.signature) };
}

/** Signs a fresh login challenge; returns the bearer token (base64url), valid for 10 minutes. */
export async function login(baseUrl: string, device: Device): Promise<string> {
  const { username, deviceId } = device;
  const challenge = await http<{ challenge: string }>(baseUrl, 'POST', '/v1/auth/challenge', { body: { username, deviceId }, headers: fromAddress(device) });
  if (challenge.status !== 200) throw new Error(`${username}.${deviceId}: challenge refused: ${challenge.status} ${JSON.stringify(challenge.body)}`);
  const signature = await signAuthChallenge(provider, device.auth.privateKey, username, deviceId, fromB64(challenge.body.challenge));
  const result = await http<{ token: string }>(baseUrl, 'POST', '/v1/auth/token', {
    body: { username, deviceId, challenge: challenge.body.challenge, signature: b64(signature) },
    headers: fromAddress(device),
  });
  if (result.status !== 200) throw new Error(`${username}.${deviceId}: login failed: ${result.status} ${JSON.stringify(result.body)}`);
  return result.body.token;
}

/** Registers `username` with its first device, then links a second one. */
export async function registerMember(baseUrl: string, username: string, index: number): Promise<Member> {
  const identity = await generateIdentityKeyPair(provider);
  const member = { username, identity };
  const address = (deviceId: number) => `10.${(index >> 8) & 0xff}.${index & 0xff}.${deviceId}`;
  const first = await newDevice(username, 1, identity, address(1));
  const registered = await http(baseUrl, 'POST', '/v1/accounts', {
    body: { identityKey: b64(identity.publicKey), deviceList: await signedList(member, [first.entry], 1), ...first.upload },
    headers: fromAddress(first.device),
  });
  if (registered.status !== 201) throw new Error(`${username}: registration failed: ${registered.status} ${JSON.stringify(registered.body)}`);

  const token = await login(baseUrl, first.device);
  const grant = await http<{ linkToken: string; deviceId: number }>(baseUrl, 'POST', '/v1/devices/link', { token, headers: fromAddress(first.device) });
  if (grant.status !== 200) throw new Error(`${username}: link token refused: ${grant.status} ${JSON.stringify(grant.body)}`);
  if (grant.body.deviceId !== 2) throw new Error(`${username}: the linked device got id ${grant.body.deviceId}, not 2`);
  const second = await newDevice(username, 2, identity, address(2));
  const linked = await http(baseUrl, 'POST', '/v1/devices', {
    body: { linkToken: grant.body.linkToken, deviceList: await signedList(member, [first.entry, second.entry], 2), ...second.upload },
    headers: fromAddress(second.device),
  });
  if (linked.status !== 201) throw new Error(`${username}: link failed: ${linked.status} ${JSON.stringify(linked.body)}`);
  return { username, identity, devices: [first.device, second.device] };
}

/** Logs in, opens a raw socket, authenticates and waits for `drained` (the mailbox is empty). */
export async function connect(baseUrl: string, wsUrl: string, device: Device): Promise<WebSocket> {
  const token = Buffer.from(await login(baseUrl, device), 'base64url');
  const socket = await openDrained(wsUrl, token, `${device.username}.${device.deviceId}`, CONNECT_TIMEOUT_MS);
  device.socket = socket;
  return socket;
}

interface BundlesAnswer {
  identityKey: string;
  devices: {
    deviceId: number;
    registrationId: number;
    signedPreKey: { keyId: number; publicKey: string; signature: string };
    preKey?: { keyId: number; publicKey: string };
    kyberPreKey: { keyId: number; publicKey: string; signature: string };
  }[];
}

/** `GET /v1/keys/:username/*`: the bundles of every device of `username` but the caller's own. */
export async function fetchBundles(baseUrl: string, token: string, caller: Device, username: string): Promise<PreKeyBundle[]> {
  const answer = await http<BundlesAnswer>(baseUrl, 'GET', `/v1/keys/${encodeURIComponent(username)}/*`, { token, headers: fromAddress(caller) });
  if (answer.status !== 200) throw new Error(`bundles of ${username}: ${answer.status} ${JSON.stringify(answer.body)}`);
  const identityKey = fromB64(answer.body.identityKey);
  return answer.body.devices.map((d) => ({
    registrationId: d.registrationId,
    deviceId: d.deviceId,
    ...(d.preKey === undefined ? {} : { preKeyId: d.preKey.keyId, preKey: fromB64(d.preKey.publicKey) }),
    signedPreKeyId: d.signedPreKey.keyId,
    signedPreKey: fromB64(d.signedPreKey.publicKey),
    signedPreKeySignature: fromB64(d.signedPreKey.signature),
    identityKey,
    kyberPreKeyId: d.kyberPreKey.keyId,
    kyberPreKey: fromB64(d.kyberPreKey.publicKey),
    kyberPreKeySignature: fromB64(d.kyberPreKey.signature),
  }));
}
