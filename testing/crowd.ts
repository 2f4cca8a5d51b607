/**
 * A crowd of raw devices for reconnect storms: many accounts of one device
 * each, registered and logged in through the real HTTP API, and opened as
 * authenticated WebSockets again and again.
 *
 * Made as cheaply as the API allows, so that a 2-core machine can run
 * thousands: every member shares one identity key, one auth key and one set
 * of prekeys (a prekey signature covers the key alone, and a login signature
 * names its username), so only each device list is signed per account. A
 * member logs in once and reconnects with the same token, which lives 10
 * minutes. Each claims its own client address (X-Forwarded-For, believed by a
 * server run with `--trust-proxy 127.0.0.1`), as separate phones would, so
 * that the per-address limit on login challenges does not apply.
 */
import { KemType, serializePublicKey } from '@parley/crypto';
import {
  decodeServerFrames,
  encodeClientFrame,
  generateIdentityKeyPair,
  generateKyberPreKey,
  generateRegistrationId,
  generateSignedPreKey,
  signAuthChallenge,
  signDeviceList,
  type IdentityKeyPair,
} from '@parley/protocol';
import WebSocket from 'ws';

import { b64, fromB64, http, provider } from './device.js';

/** The server arguments a crowd needs: its members' X-Forwarded-For addresses are believed. */
export const CROWD_SERVER_ARGS = ['--trust-proxy', '127.0.0.1'] as const;

/** Registrations and logins in flight at once. */
const CONCURRENCY = 32;

export interface Member {
  readonly username: string;
  /** The connection token's 53 bytes. */
  readonly token: Uint8Array;
}

/** What every member shares. */
interface Keys {
  readonly identity: IdentityKeyPair;
  readonly auth: IdentityKeyPair;
  readonly prekeys: { readonly signedPreKey: unknown; readonly kyberLastResortKey: unknown; readonly identityKey: string };
}

async function sharedKeys(): Promise<Keys> {
  const identity = await generateIdentityKeyPair(provider);
  const signed = await generateSignedPreKey(provider, identity, 1, 0);
  const lastResort = await generateKyberPreKey(provider, identity, 1, 0, { lastResort: true, type: KemType.Kyber1024 });
  return {
    identity,
    auth: await generateIdentityKeyPair(provider),
    prekeys: {
      identityKey: b64(identity.publicKey),
      signedPreKey: { keyId: signed.id, publicKey: b64(serializePublicKey(signed.publicKey)), signature: b64(signed.signature) },
      kyberLastResortKey: { keyId: lastResort.id, publicKey: b64(lastResort.publicKey), signature: b64(lastResort.signature) },
    },
  };
}

/** Registers member `index` and logs it in. @throws unless every step succeeds. */
async function enrol(baseUrl: string, keys: Keys, tag: string, index: number): Promise<Member> {
  const username = `crowd_${tag}_${index}`;
  const headers = { 'x-forwarded-for': `10.${(index >> 16) & 0xff}.${(index >> 8) & 0xff}.${index & 0xff}` };
  const list = await signDeviceList(provider, keys.identity, {
    username,
    version: 1,
    devices: [{ deviceId: 1, registrationId: generateRegistrationId(provider), authKey: keys.auth.publicKey }],
  });
  const registered = await http(baseUrl, 'POST', '/v1/accounts', {
    body: { ...keys.prekeys, deviceList: { list: b64(list.list), signature: b64(list.signature) } },
    headers,
  });
  if (registered.status !== 201) throw new Error(`${username}: registration failed: ${registered.status} ${JSON.stringify(registered.body)}`);
  const challenge = await http<{ challenge: string }>(baseUrl, 'POST', '/v1/auth/challenge', { body: { username, deviceId: 1 }, headers });
  const signature = await signAuthChallenge(provider, keys.auth.privateKey, username, 1, fromB64(challenge.body.challenge));
  const login = await http<{ token: string }>(baseUrl, 'POST', '/v1/auth/token', {
    body: { username, deviceId: 1, challenge: challenge.body.challenge, signature: b64(signature) },
    headers,
  });
  if (login.status !== 200) throw new Error(`${username}: login failed: ${login.status} ${JSON.stringify(login.body)}`);
  return { username, token: new Uint8Array(Buffer.from(login.body.token, 'base64url')) };
}

/** Registers and logs in `size` members on the server at `baseUrl` (run with CROWD_SERVER_ARGS). */
export async function gatherCrowd(baseUrl: string, size: number): Promise<Member[]> {
  const keys = await sharedKeys();
  const tag = Math.random().toString(36).slice(2, 8);
  const members: Member[] = [];
  for (let start = 0; start < size; start += CONCURRENCY) {
    const batch = Array.from({ length: Math.min(CONCURRENCY, size - start) }, (_, i) => enrol(baseUrl, keys, tag, start + i));
    members.push(...(await Promise.all(batch)));
  }
  return members;
}

/**
 * Opens a WebSocket for `member`, authenticates, and resolves once the server
 * says its (empty) mailbox is drained.
 * @throws if the socket closes first, or after `timeoutMs`.
 */
export function openMember(wsUrl: string, member: Member, timeoutMs: number): Promise<WebSocket> {
  const socket = new WebSocket(wsUrl, { perMessageDeflate: false });
  socket.on('error', () => undefined); // reported by 'close' while connecting; ignored after
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (why?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (why === undefined) {
        resolve(socket);
      } else {
        socket.terminate();
        reject(new Error(`${member.username}: ${why}`));
      }
    };
    const timer = setTimeout(() => {
      settle(`not drained within ${timeoutMs} ms`);
    }, timeoutMs);
    socket.once('open', () => {
      socket.send(encodeClientFrame({ kind: 'auth', token: member.token }));
    });
    socket.on('message', (data: Buffer) => {
      if (decodeServerFrames(new Uint8Array(data)).some((frame) => frame.kind === 'drained')) settle();
    });
    socket.once('close', (code) => {
      settle(`closed (${code}) while connecting`);
    });
  });
}
