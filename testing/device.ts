/**
 * A minimal Parley device for server tests and benchmarks: real keys, the real
 * HTTP API and a real WebSocket, and no session logic (bodies are opaque
 * bytes to the server, so tests send whatever bytes they like).
 */
import { KemType, serializePublicKey, type CryptoProvider } from '@parley/crypto';
import { createNodeProvider } from '@parley/crypto/node';
import {
  decodeServerFrames,
  encodeClientFrame,
  generateIdentityKeyPair,
  generateKyberPreKey,
  generatePreKeys,
  generateRegistrationId,
  generateSignedPreKey,
  signAuthChallenge,
  signDeviceList,
  type ClientFrame,
  type DeviceEntry,
  type Destination,
  type IdentityKeyPair,
  type MulticastRecipient,
  type ServerFrame,
} from '@parley/protocol';
import WebSocket from 'ws';

export const provider: CryptoProvider = createNodeProvider();

/** Standard padded base64, as the HTTP API carries bytes, and back. */
export const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
export const fromB64 = (text: string) => new Uint8Array(Buffer.from(text, 'base64'));

export interface HttpResult<T = unknown> {
  readonly status: number;
  readonly body: T;
  readonly headers: Headers;
}

/** One HTTP request; JSON in, JSON out. */
export async function http<T = unknown>(
  baseUrl: string,
  method: string,
  path: string,
  options: { body?: unknown; token?: string; rawBody?: string; headers?: Record<string, string> } = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token}`;
  if (options.body !== undefined || options.rawBody !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    ...(options.rawBody !== undefined ? { body: options.rawBody } : options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, body: (text === '' ? undefined : JSON.parse(text)) as T, headers: response.headers };
}

/** What a device needs to sign for, and what it uploads. */
async function deviceKeys(identity: IdentityKeyPair) {
  const auth = await generateIdentityKeyPair(provider);
  const signed = await generateSignedPreKey(provider, identity, 1, 0);
  const lastResort = await generateKyberPreKey(provider, identity, 1, 0, { lastResort: true, type: KemType.Kyber1024 });
  return {
    auth,
    registrationId: generateRegistrationId(provider),
    signedPreKey: { keyId: signed.id, publicKey: b64(serializePublicKey(signed.publicKey)), signature: b64(signed.signature) },
    kyberLastResortKey: { keyId: lastResort.id, publicKey: b64(lastResort.publicKey), signature: b64(lastResort.signature) },
  };
}

/** An account as its devices know it: the identity key and the device list they sign. */
export class TestAccount {
  readonly username: string;
  readonly identity: IdentityKeyPair;
  readonly devices: TestDevice[] = [];
  version = 1;

  private constructor(username: string, identity: IdentityKeyPair) {
    this.username = username;
    this.identity = identity;
  }

  /** Registers a new account with its first device; throws unless the server answers 201. */
  static async register(baseUrl: string, username: string): Promise<TestAccount> {
    const account = new TestAccount(username, await generateIdentityKeyPair(provider));
    const keys = await deviceKeys(account.identity);
    const device = new TestDevice(baseUrl, account, 1, keys.registrationId, keys.auth);
    const deviceList = await account.sign([device.entry()], 1);
    const result = await http(baseUrl, 'POST', '/v1/accounts', {
      body: {
        identityKey: b64(account.identity.publicKey),
        deviceList,
        signedPreKey: keys.signedPreKey,
        kyberLastResortKey: keys.kyberLastResortKey,
      },
    });
    if (result.status !== 201) throw new Error(`registration failed: ${result.status} ${JSON.stringify(result.body)}`);
    account.devices.push(device);
    return account;
  }

  /** The signed device list for `entries` at `version`, as the API takes it. */
  async sign(entries: DeviceEntry[], version: number): Promise<{ list: string; signature: string }> {
    const signed = await signDeviceList(provider, this.identity, { username: this.username, version, devices: entries });
    return { list: b64(signed.list), signature: b64(signed.signature) };
  }

  /** Links a new device through `from`; throws unless the server answers 201. */
  async link(from: TestDevice): Promise<TestDevice> {
    const token = await from.login();
    const grant = await http<{ linkToken: string; deviceId: number }>(from.baseUrl, 'POST', '/v1/devices/link', { token });
    if (grant.status !== 200) throw new Error(`link token refused: ${grant.status} ${JSON.stringify(grant.body)}`);
    const keys = await deviceKeys(this.identity);
    const device = new TestDevice(from.baseUrl, this, grant.body.deviceId, keys.registrationId, keys.auth);
    const deviceList = await this.sign([...this.devices, device].map((d) => d.entry()), this.version + 1);
    const result = await http(from.baseUrl, 'POST', '/v1/devices', {
      body: { linkToken: grant.body.linkToken, deviceList, signedPreKey: keys.signedPreKey, kyberLastResortKey: keys.kyberLastResortKey },
    });
    if (result.status !== 201) throw new Error(`link failed: ${result.status} ${JSON.stringify(result.body)}`);
    this.version += 1;
    this.devices.push(device);
    return device;
  }
}

/** Resolves when one of `waiters` is called (the caller's socket got a frame) or after `ms`, whichever comes first. */
export function wakeOrTimeout(waiters: Set<() => void>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const waiter = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      waiters.delete(waiter);
      resolve();
    }, ms);
    waiters.add(waiter);
  });
}

export class TestDevice {
  readonly baseUrl: string;
  readonly account: TestAccount;
  readonly deviceId: number;
  readonly registrationId: number;
  readonly auth: IdentityKeyPair;

  constructor(baseUrl: string, account: TestAccount, deviceId: number, registrationId: number, auth: IdentityKeyPair) {
    this.baseUrl = baseUrl;
    this.account = account;
    this.deviceId = deviceId;
    this.registrationId = registrationId;
    this.auth = auth;
  }

  get username(): string {
    return this.account.username;
  }

  entry(): DeviceEntry {
    return { deviceId: this.deviceId, registrationId: this.registrationId, authKey: this.auth.publicKey };
  }

  /** Signs a fresh challenge and returns the connection token. */
  async login(): Promise<string> {
    const challenge = await http<{ challenge: string }>(this.baseUrl, 'POST', '/v1/auth/challenge', {
      body: { username: this.username, deviceId: this.deviceId },
    });
    const bytes = new Uint8Array(Buffer.from(challenge.body.challenge, 'base64'));
    const signature = await signAuthChallenge(provider, this.auth.privateKey, this.username, this.deviceId, bytes);
    const result = await http<{ token: string }>(this.baseUrl, 'POST', '/v1/auth/token', {
      body: { username: this.username, deviceId: this.deviceId, challenge: challenge.body.challenge, signature: b64(signature) },
    });
    if (result.status !== 200) throw new Error(`login failed: ${result.status} ${JSON.stringify(result.body)}`);
    return result.body.token;
  }

  /** Uploads `count` one-time prekeys and `count` one-time Kyber prekeys, ids from `startId`. */
  async uploadPreKeys(count: number, startId = 100): Promise<void> {
    const preKeys = await generatePreKeys(provider, startId, count);
    const kyber = [];
    for (let i = 0; i < count; i++) kyber.push(await generateKyberPreKey(provider, this.account.identity, startId + i, 0));
    const result = await http(this.baseUrl, 'PUT', '/v1/keys', {
      token: await this.login(),
      body: {
        preKeys: preKeys.map((k) => ({ keyId: k.id, publicKey: b64(serializePublicKey(k.publicKey)) })),
        kyberPreKeys: kyber.map((k) => ({ keyId: k.id, publicKey: b64(k.publicKey), signature: b64(k.signature) })),
      },
    });
    if (result.status !== 204) throw new Error(`upload failed: ${result.status} ${JSON.stringify(result.body)}`);
  }

  /** Opens a WebSocket, authenticates and waits for `ready`. */
  async connect(wsUrl: string): Promise<Connection> {
    const connection = await Connection.open(wsUrl);
    connection.send({ kind: 'auth', token: new Uint8Array(Buffer.from(await this.login(), 'base64url')) });
    await connection.next('ready');
    return connection;
  }
}

/** A raw device WebSocket with a queue of decoded server frames. */
export class Connection {
  readonly socket: WebSocket;
  readonly #frames: ServerFrame[] = [];
  readonly #waiters = new Set<() => void>();
  #requestId = 0;
  /** Resolves with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.on('message', (data: Buffer) => {
      this.#frames.push(...decodeServerFrames(new Uint8Array(data)));
      this.#wake();
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        this.#wake();
      });
    });
    socket.on('error', () => undefined);
  }

  #wake(): void {
    for (const waiter of this.#waiters) waiter();
    this.#waiters.clear();
  }

  static open(wsUrl: string): Promise<Connection> {
    const socket = new WebSocket(wsUrl);
    return new Promise((resolve, reject) => {
      socket.once('open', () => {
        resolve(new Connection(socket));
      });
      socket.once('error', reject);
    });
  }

  send(frame: ClientFrame): void {
    this.socket.send(encodeClientFrame(frame));
  }

  /** Frames received and not yet taken. */
  get pending(): readonly ServerFrame[] {
    return this.#frames;
  }

  /** Every queued frame of `kind`, removed from the queue (for a test that handles frames as they come). */
  takeAll<K extends ServerFrame['kind']>(kind: K): Extract<ServerFrame, { kind: K }>[] {
    const taken = this.#frames.filter((f) => f.kind === kind) as Extract<ServerFrame, { kind: K }>[];
    if (taken.length > 0) this.#frames.splice(0, this.#frames.length, ...this.#frames.filter((f) => f.kind !== kind));
    return taken;
  }

  /** Runs `listener` after each message's frames are queued. */
  onFrames(listener: () => void): void {
    this.socket.on('message', listener);
  }

  /**
   * The first queued or incoming frame that `predicate` accepts, removed from
   * the queue; frames it passes over stay queued.
   * @throws on timeout or if the socket closes first.
   */
  async take(predicate: (frame: ServerFrame) => boolean, what: string, timeoutMs = 10_000): Promise<ServerFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.#frames.findIndex(predicate);
      if (index >= 0) return this.#frames.splice(index, 1)[0]!;
      if (this.socket.readyState !== WebSocket.OPEN) throw new Error(`socket closed while waiting for ${what}`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`no ${what} within ${timeoutMs} ms`);
      await wakeOrTimeout(this.#waiters, remaining);
    }
  }

  /** The next frame of `kind` (and matching `filter`). */
  async next<K extends ServerFrame['kind']>(
    kind: K,
    filter: (frame: Extract<ServerFrame, { kind: K }>) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<Extract<ServerFrame, { kind: K }>> {
    const frame = await this.take((f) => f.kind === kind && filter(f as Extract<ServerFrame, { kind: K }>), `${kind} frame`, timeoutMs);
    return frame as Extract<ServerFrame, { kind: K }>;
  }

  /** Sends without waiting; returns the request id. */
  submit(destinations: Destination[]): number {
    const requestId = ++this.#requestId;
    this.send({ kind: 'send', requestId, destinations });
    return requestId;
  }

  /** Multicasts `body` without waiting; returns the request id (from the same sequence as `submit`'s). */
  submitMulticast(type: number, body: Uint8Array, recipients: MulticastRecipient[]): number {
    const requestId = ++this.#requestId;
    this.send({ kind: 'multicast', requestId, type, body, recipients });
    return requestId;
  }

  /** The answer (`sent` or `refused`) to a submitted send. */
  async answer(requestId: number, timeoutMs = 10_000): Promise<Extract<ServerFrame, { kind: 'sent' | 'refused' }>> {
    const frame = await this.take(
      (f) => (f.kind === 'sent' || f.kind === 'refused') && f.requestId === requestId,
      `answer to send ${requestId}`,
      timeoutMs,
    );
    return frame as Extract<ServerFrame, { kind: 'sent' | 'refused' }>;
  }

  /** Sends and waits for the answer. */
  request(destinations: Destination[]): Promise<Extract<ServerFrame, { kind: 'sent' | 'refused' }>> {
    return this.answer(this.submit(destinations));
  }

  /** Multicasts and waits for the answer. */
  multicast(type: number, body: Uint8Array, recipients: MulticastRecipient[]): Promise<Extract<ServerFrame, { kind: 'sent' | 'refused' }>> {
    return this.answer(this.submitMulticast(type, body, recipients));
  }

  /** Takes `count` envelopes in arrival order. */
  async envelopes(count: number, timeoutMs = 10_000): Promise<Extract<ServerFrame, { kind: 'envelope' }>['envelope'][]> {
    const out = [];
    for (let i = 0; i < count; i++) out.push((await this.next('envelope', undefined, timeoutMs)).envelope);
    return out;
  }

  ack(ids: number[]): void {
    this.send({ kind: 'ack', ids });
  }

  close(): Promise<{ code: number; reason: string }> {
    this.socket.close(1000);
    return this.closed;
  }
}

/** A one-destination send naming every device of `to` (bodies from `body(deviceId)`). */
export function to(account: TestAccount, body: (deviceId: number) => Uint8Array, except?: TestDevice): Destination {
  return {
    username: account.username,
    messages: account.devices
      .filter((d) => d !== except)
      .map((d) => ({ deviceId: d.deviceId, registrationId: d.registrationId, type: 2, body: body(d.deviceId) })),
  };
}

/** A multicast recipient naming every device of `account` (but `except`) with its registration id. */
export function everyDevice(account: TestAccount, except?: TestDevice): MulticastRecipient {
  return {
    username: account.username,
    devices: account.devices.filter((d) => d !== except).map((d) => ({ deviceId: d.deviceId, registrationId: d.registrationId })),
  };
}
