/**
 * The server's HTTP API (docs/API.md §3), as typed calls. Bytes travel as
 * base64; every answer is checked for shape before it is used, and an error
 * answer becomes a ClientError carrying the server's code. Runs on `fetch`,
 * which Node and browsers both have.
 */
import { serializePublicKey, type CryptoProvider } from '@parley/crypto';
import { signAuthChallenge, type IdentityKeyPair, type KyberPreKeyRecord, type PreKeyRecord, type SignedPreKeyRecord } from '@parley/protocol';

import { fromBase64, toBase64 } from './base64.js';
import { ClientError } from './errors.js';

export interface SignedDeviceListBytes {
  readonly list: Uint8Array;
  readonly signature: Uint8Array;
}

/** One device's keys in a bundle answer (docs/API.md §3.10). */
export interface BundleDevice {
  readonly deviceId: number;
  readonly registrationId: number;
  readonly signedPreKey: { readonly keyId: number; readonly publicKey: Uint8Array; readonly signature: Uint8Array };
  readonly preKey?: { readonly keyId: number; readonly publicKey: Uint8Array };
  readonly kyberPreKey: { readonly keyId: number; readonly publicKey: Uint8Array; readonly signature: Uint8Array };
}

export interface AccountAnswer {
  readonly username: string;
  readonly identityKey: Uint8Array;
  readonly deviceList: SignedDeviceListBytes;
}

export interface BundlesAnswer extends AccountAnswer {
  readonly devices: readonly BundleDevice[];
}

/** How a device proves who it is: its username, device id and auth key. */
export interface DeviceCredentials {
  readonly username: string;
  readonly deviceId: number;
  readonly auth: IdentityKeyPair;
}

/** A request unanswered this long fails with NETWORK (a stuck connection must not hold the client's lock forever). */
const REQUEST_TIMEOUT_MS = 30_000;
/** Tokens are used until this long before they expire, then a new one is fetched. */
const TOKEN_MARGIN_MS = 60_000;

// Small readers for answers: a server that breaks its own API gets BAD_RESPONSE, not a TypeError.
type Json = Record<string, unknown>;
const bad = (what: string) => new ClientError('BAD_RESPONSE', `the server's answer has no valid ${what}`);
function object(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(what);
  return value as Json;
}
function int(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw bad(what);
  return value;
}
function text(value: unknown, what: string): string {
  if (typeof value !== 'string') throw bad(what);
  return value;
}
function bytes(value: unknown, what: string): Uint8Array {
  try {
    return fromBase64(text(value, what));
  } catch {
    throw bad(what);
  }
}
const signedKey = (value: unknown, what: string) => {
  const o = object(value, what);
  return { keyId: int(o['keyId'], what), publicKey: bytes(o['publicKey'], what), signature: bytes(o['signature'], what) };
};
const deviceList = (value: unknown): SignedDeviceListBytes => {
  const o = object(value, 'device list');
  return { list: bytes(o['list'], 'device list'), signature: bytes(o['signature'], 'device list signature') };
};

const apiSignedPreKey = (k: SignedPreKeyRecord) => ({
  keyId: k.id,
  publicKey: toBase64(serializePublicKey(k.publicKey)),
  signature: toBase64(k.signature),
});
const apiKyberPreKey = (k: KyberPreKeyRecord) => ({ keyId: k.id, publicKey: toBase64(k.publicKey), signature: toBase64(k.signature) });
const apiDeviceList = (l: SignedDeviceListBytes) => ({ list: toBase64(l.list), signature: toBase64(l.signature) });

export class ServerApi {
  readonly baseUrl: string;
  readonly #provider: CryptoProvider;
  readonly #now: () => number;
  #device: DeviceCredentials | undefined;
  #token: { value: string; expiresAt: number } | undefined;

  constructor(baseUrl: string, provider: CryptoProvider, now: () => number = Date.now) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.#provider = provider;
    this.#now = now;
  }

  /** The device that authenticated calls log in as. */
  signInAs(device: DeviceCredentials): void {
    this.#device = device;
    this.#token = undefined;
  }

  async #request(method: string, path: string, options: { body?: unknown; auth?: boolean } = {}): Promise<unknown> {
    const headers: Record<string, string> = {};
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    if (options.auth === true) headers['authorization'] = `Bearer ${await this.token()}`;
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      });
    } catch (error) {
      throw new ClientError('NETWORK', `cannot reach ${this.baseUrl}`, { cause: error });
    }
    const body = await response.text();
    let json: unknown;
    try {
      json = body === '' ? undefined : JSON.parse(body);
    } catch {
      throw new ClientError('BAD_RESPONSE', `the server answered ${response.status} with a body that is not JSON`);
    }
    if (!response.ok) {
      const error = typeof json === 'object' && json !== null ? (json as { error?: { code?: unknown; message?: unknown } }).error : undefined;
      const code = typeof error?.code === 'string' ? error.code : 'UNKNOWN';
      const message = typeof error?.message === 'string' ? error.message : response.statusText;
      const named = /^\/v1\/(?:accounts|keys)\/([^/]+)/.exec(path);
      if (code === 'NOT_FOUND' && method === 'GET' && named !== null) {
        throw new ClientError('UNKNOWN_USER', `no account named ${decodeURIComponent(named[1]!)} on ${this.baseUrl}`, { status: response.status, serverCode: code });
      }
      throw new ClientError('SERVER', `the server refused ${method} ${path.split('/').slice(0, 3).join('/')}: ${message}`, {
        status: response.status,
        serverCode: code,
      });
    }
    return json;
  }

  /** Forgets the cached token (the server refused it): the next call logs in again. */
  forgetToken(): void {
    this.#token = undefined;
  }

  /** A valid connection token, logging in with a signed challenge when the last one is about to expire. */
  async token(): Promise<string> {
    const device = this.#device;
    if (device === undefined) throw new ClientError('NO_ACCOUNT', 'this client has no device to log in as');
    if (this.#token !== undefined && this.#token.expiresAt - TOKEN_MARGIN_MS > this.#now()) return this.#token.value;
    const { username, deviceId } = device;
    const challenge = bytes(object(await this.#request('POST', '/v1/auth/challenge', { body: { username, deviceId } }), 'challenge')['challenge'], 'challenge');
    const signature = await signAuthChallenge(this.#provider, device.auth.privateKey, username, deviceId, challenge);
    const answer = object(
      await this.#request('POST', '/v1/auth/token', {
        body: { username, deviceId, challenge: toBase64(challenge), signature: toBase64(signature) },
      }),
      'token',
    );
    this.#token = { value: text(answer['token'], 'token'), expiresAt: int(answer['expiresAt'], 'token expiry') };
    return this.#token.value;
  }

  async register(request: {
    identityKey: Uint8Array;
    deviceList: SignedDeviceListBytes;
    signedPreKey: SignedPreKeyRecord;
    kyberLastResortKey: KyberPreKeyRecord;
  }): Promise<void> {
    await this.#request('POST', '/v1/accounts', {
      body: {
        identityKey: toBase64(request.identityKey),
        deviceList: apiDeviceList(request.deviceList),
        signedPreKey: apiSignedPreKey(request.signedPreKey),
        kyberLastResortKey: apiKyberPreKey(request.kyberLastResortKey),
      },
    });
  }

  async uploadKeys(keys: {
    signedPreKey?: SignedPreKeyRecord;
    preKeys?: readonly PreKeyRecord[];
    kyberPreKeys?: readonly KyberPreKeyRecord[];
    kyberLastResortKey?: KyberPreKeyRecord;
  }): Promise<void> {
    await this.#request('PUT', '/v1/keys', {
      auth: true,
      body: {
        ...(keys.signedPreKey === undefined ? {} : { signedPreKey: apiSignedPreKey(keys.signedPreKey) }),
        ...(keys.preKeys === undefined ? {} : { preKeys: keys.preKeys.map((k) => ({ keyId: k.id, publicKey: toBase64(serializePublicKey(k.publicKey)) })) }),
        ...(keys.kyberPreKeys === undefined ? {} : { kyberPreKeys: keys.kyberPreKeys.map(apiKyberPreKey) }),
        ...(keys.kyberLastResortKey === undefined ? {} : { kyberLastResortKey: apiKyberPreKey(keys.kyberLastResortKey) }),
      },
    });
  }

  async keyCounts(): Promise<{ preKeys: number; kyberPreKeys: number }> {
    const o = object(await this.#request('GET', '/v1/keys', { auth: true }), 'key counts');
    return { preKeys: int(o['preKeys'], 'prekey count'), kyberPreKeys: int(o['kyberPreKeys'], 'Kyber prekey count') };
  }

  async account(username: string): Promise<AccountAnswer> {
    const o = object(await this.#request('GET', `/v1/accounts/${encodeURIComponent(username)}`, { auth: true }), 'account');
    return { username: text(o['username'], 'username'), identityKey: bytes(o['identityKey'], 'identity key'), deviceList: deviceList(o['deviceList']) };
  }

  /** Bundles for one device of `username`, or every device but the caller's (`'*'`). */
  async bundles(username: string, deviceId: number | '*'): Promise<BundlesAnswer> {
    const o = object(await this.#request('GET', `/v1/keys/${encodeURIComponent(username)}/${deviceId}`, { auth: true }), 'bundles');
    const devices = o['devices'];
    if (!Array.isArray(devices)) throw bad('devices');
    return {
      username: text(o['username'], 'username'),
      identityKey: bytes(o['identityKey'], 'identity key'),
      deviceList: deviceList(o['deviceList']),
      devices: devices.map((value: unknown): BundleDevice => {
        const d = object(value, 'device');
        const preKey = d['preKey'] === undefined ? undefined : object(d['preKey'], 'prekey');
        return {
          deviceId: int(d['deviceId'], 'device id'),
          registrationId: int(d['registrationId'], 'registration id'),
          signedPreKey: signedKey(d['signedPreKey'], 'signed prekey'),
          kyberPreKey: signedKey(d['kyberPreKey'], 'Kyber prekey'),
          ...(preKey === undefined ? {} : { preKey: { keyId: int(preKey['keyId'], 'prekey id'), publicKey: bytes(preKey['publicKey'], 'prekey') } }),
        };
      }),
    };
  }

  /** Asks for a link token for a new device of this account. */
  async linkToken(): Promise<{ linkToken: string; deviceId: number; expiresAt: number }> {
    const o = object(await this.#request('POST', '/v1/devices/link', { auth: true }), 'link token');
    return { linkToken: text(o['linkToken'], 'link token'), deviceId: int(o['deviceId'], 'device id'), expiresAt: int(o['expiresAt'], 'expiry') };
  }

  /** Completes a link as the new device (authenticated by the link token alone). */
  async completeLink(request: {
    linkToken: string;
    deviceList: SignedDeviceListBytes;
    signedPreKey: SignedPreKeyRecord;
    kyberLastResortKey: KyberPreKeyRecord;
  }): Promise<void> {
    await this.#request('POST', '/v1/devices', {
      body: {
        linkToken: request.linkToken,
        deviceList: apiDeviceList(request.deviceList),
        signedPreKey: apiSignedPreKey(request.signedPreKey),
        kyberLastResortKey: apiKyberPreKey(request.kyberLastResortKey),
      },
    });
  }

  /** Stores a smaller device list; the server deletes the devices it no longer names. */
  async removeDevices(list: SignedDeviceListBytes): Promise<number[]> {
    const o = object(await this.#request('PUT', '/v1/devices', { auth: true, body: { deviceList: apiDeviceList(list) } }), 'removal');
    const removed = o['removed'];
    if (!Array.isArray(removed)) throw bad('removed devices');
    return removed.map((id: unknown) => int(id, 'removed device'));
  }

  /** The WebSocket URL of this server. */
  get webSocketUrl(): string {
    return `${this.baseUrl.replace(/^http/, 'ws')}/v1/websocket`;
  }
}
