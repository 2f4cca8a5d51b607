/**
 * Fuzz targets for the server's REST API: mutated bodies (and paths) sent to
 * the real routes of a server running in this process, on fresh SQLite
 * storage (PostgreSQL with PARLEY_FUZZ_STORAGE=postgres). A route "decodes" an input when it answers 2xx, and refuses it
 * with a 4xx whose body is the documented `{error: {code, message}}`, the
 * code's status being the one ERRORS maps it to. A 5xx, an undocumented
 * body or a dropped connection is a failure.
 *
 * Seeds are valid requests, each made to succeed once (a registration, a
 * login, a link); mutations of them are mostly refused, which is the point.
 * Besides byte mutations of the JSON text, the targets make structure-aware
 * ones: a value replaced by any JSON, a key deleted, the bytes inside a
 * base64 string mutated.
 */
import { serializePublicKey } from '@parley/crypto';
import {
  generateIdentityKeyPair,
  generateKyberPreKey,
  generatePreKeys,
  generateRegistrationId,
  generateSignedPreKey,
  signAuthChallenge,
  signDeviceList,
  type IdentityKeyPair,
} from '@parley/protocol';
import fc from 'fast-check';

import { ERRORS, startServer, type RunningServer, type ServerErrorCode } from '../../../packages/server/src/index.js';
import { b64, http, provider, TestAccount, type TestDevice } from '../../device.js';
import { applyMutations, mutations, type Mutation } from '../../fuzz.js';
import { freshStorage, type EngineName } from '../../server.js';
import type { FuzzTarget, Harness } from '../engine.js';

/** Requests go over loopback to a server on the same two cores, signature checks included: a second is too tight. */
const HTTP_HANG_MS = 5_000;
/** Each input is an HTTP request: a tenth of the inputs a decoder gets. */
const HTTP_RUN_SHARE = 0.1;
/** Tokens live 10 minutes (TOKEN_LIFETIME_MS); a long run logs in again well before. */
const TOKEN_REFRESH_MS = 5 * 60_000;

/** A documented refusal: a 4xx with the error body the API describes. */
export class HttpRefusal extends Error {
  override readonly name = 'HttpRefusal';
  readonly status: number;
  readonly code: ServerErrorCode;

  constructor(status: number, code: ServerErrorCode, message: string) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

/** Judges an answer: returns for a 2xx, throws HttpRefusal for a documented 4xx, and a plain Error (a failure) for anything else. */
function judge(status: number, text: string): void {
  if (status >= 200 && status < 300) return;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const error = typeof body === 'object' && body !== null ? (body as { error?: { code?: unknown; message?: unknown } }).error : undefined;
  const code = error?.code;
  const documented = typeof code === 'string' && Object.hasOwn(ERRORS, code) && ERRORS[code as ServerErrorCode].status === status;
  if (status >= 400 && status < 500 && documented && typeof error?.message === 'string') throw new HttpRefusal(status, code as ServerErrorCode, error.message);
  throw new Error(`answered ${status} with ${text.slice(0, 300)}`);
}

/** The storage engine the server targets run on: SQLite, unless PARLEY_FUZZ_STORAGE says postgres. */
const ENGINE: EngineName = process.env['PARLEY_FUZZ_STORAGE'] === 'postgres' ? 'postgres' : 'sqlite';

/** A server in this process on fresh storage (a temporary folder, or a fresh PostgreSQL schema), dropped on close. */
export async function freshServer(): Promise<{ server: RunningServer; close: () => Promise<void> }> {
  const storage = await freshStorage(ENGINE);
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    // SQLite storage is the folder its server arguments name (`--data <dir>`).
    database:
      storage.url === undefined
        ? { engine: 'sqlite', dataDir: storage.args[1]!, synchronous: 'normal' }
        : { engine: 'postgres', url: storage.url, poolSize: 4 },
    allowInsecureHttp: false,
    heartbeatMs: 30_000,
    // Registrations are a route under test here, not an abuse to slow down.
    registrationBurst: 1_000_000,
    provisioningBurst: 10,
    logLevel: 'silent',
    logIps: false,
    publicMetrics: false,
  });
  return {
    server,
    close: async () => {
      await server.close();
      await storage.drop();
    },
  };
}

/** A device's token, logging in again before it expires. */
export function tokens(device: TestDevice): () => Promise<string> {
  let current: { value: string; at: number } | undefined;
  return async () => {
    if (current === undefined || Date.now() - current.at > TOKEN_REFRESH_MS) current = { value: await device.login(), at: Date.now() };
    return current.value;
  };
}

/** What a route target needs from its world: seeds, and the token to send (for routes that need one). */
interface RouteSetup {
  readonly seeds: unknown[];
  readonly token?: () => Promise<string>;
}

const utf8 = (value: string) => new TextEncoder().encode(value);

/** A target sending each input, as the JSON body, to `method path`. */
function bodyTarget(name: string, method: string, path: string, setup: (server: RunningServer) => Promise<RouteSetup>): FuzzTarget {
  return {
    name,
    title: `${method} ${path} body`,
    hangMs: HTTP_HANG_MS,
    runShare: HTTP_RUN_SHARE,
    async open(): Promise<Harness> {
      const { server, close } = await freshServer();
      const { seeds, token } = await setup(server);
      return {
        seeds: seeds.map((seed) => utf8(JSON.stringify(seed))),
        inputs: jsonEdits(seeds),
        async decode(input) {
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (token !== undefined) headers['authorization'] = `Bearer ${await token()}`;
          const response = await fetch(`${server.url}${path}`, { method, headers, body: Uint8Array.from(input) });
          judge(response.status, await response.text());
        },
        isTypedError: (error) => error instanceof HttpRefusal,
        close,
      };
    },
  };
}

/** A target sending GET `prefix` + each input as the rest of the path (bytes outside the URL's alphabet percent-encoded), signed in as whom `signIn` says. */
function pathTarget(name: string, prefix: string, seeds: string[], signIn: (server: RunningServer) => Promise<() => Promise<string>>): FuzzTarget {
  return {
    name,
    title: `GET ${prefix}… path`,
    hangMs: HTTP_HANG_MS,
    runShare: HTTP_RUN_SHARE,
    async open(): Promise<Harness> {
      const { server, close } = await freshServer();
      const token = await signIn(server);
      return {
        seeds: seeds.map(utf8),
        async decode(input) {
          const headers = { authorization: `Bearer ${await token()}` };
          const response = await fetch(`${server.url}${prefix}${pathOf(input)}`, { headers });
          judge(response.status, await response.text());
        },
        isTypedError: (error) => error instanceof HttpRefusal,
        close,
      };
    },
  };
}

const PATH_SAFE = /^[A-Za-z0-9._~!$&'()*+,;=:@/-]$/;
const pathOf = (input: Uint8Array) =>
  Array.from(input, (b) => (PATH_SAFE.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`)).join('');

// --- Structure-aware mutations of JSON bodies ---------------------------------

type Edit =
  | { readonly kind: 'replace'; readonly value: fc.JsonValue }
  | { readonly kind: 'delete' }
  | { readonly kind: 'bytes'; readonly changes: Mutation[] };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant('replace' as const), value: fc.jsonValue({ maxDepth: 2 }) }),
  fc.constant({ kind: 'delete' as const }),
  fc.record({ kind: fc.constant('bytes' as const), changes: mutations }),
);

type Json = fc.JsonValue;
type Container = Record<string, Json> | Json[];

/** Every place a value sits in `value`: its container and the key or index. */
function places(value: Json): [Container, string | number][] {
  if (typeof value !== 'object' || value === null) return [];
  const entries: [string | number, Json][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : (Object.entries(value) as [string, Json][]);
  return entries.flatMap(([key, child]) => [[value, key] as [Container, string | number], ...places(child)]);
}

/** `seed` with `change` made at its `at`-th place (modulo their number). */
function applyEdit(seed: unknown, at: number, change: Edit): Json {
  const copy = structuredClone(seed) as Json;
  const all = places(copy);
  if (all.length === 0) return copy;
  const [container, key] = all[at % all.length]!;
  const slots = container as Record<string | number, Json>;
  if (change.kind === 'replace') slots[key] = change.value;
  else if (change.kind === 'delete') {
    if (Array.isArray(container)) container.splice(key as number, 1);
    else Reflect.deleteProperty(container, key);
  } else {
    const old = slots[key];
    if (typeof old === 'string') slots[key] = b64(applyMutations(new Uint8Array(Buffer.from(old, 'base64')), change.changes));
  }
  return copy;
}

function jsonEdits(seeds: readonly unknown[]): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(fc.nat({ max: seeds.length - 1 }), fc.array(fc.tuple(fc.nat(), edit), { minLength: 1, maxLength: 3 }))
    .map(([i, edits]) => utf8(JSON.stringify(edits.reduce<unknown>((json, [at, change]) => applyEdit(json, at, change), seeds[i]))));
}

// --- Valid requests -------------------------------------------------------------

const signedKey = (k: { id: number; publicKey: Uint8Array; signature: Uint8Array }, serialized: Uint8Array) => ({
  keyId: k.id,
  publicKey: b64(serialized),
  signature: b64(k.signature),
});

/** A new device's keys for an account, as registration and linking send them. */
async function deviceKeys(identity: IdentityKeyPair) {
  const auth = await generateIdentityKeyPair(provider);
  const signed = await generateSignedPreKey(provider, identity, 1, 0);
  const lastResort = await generateKyberPreKey(provider, identity, 1, 0, { lastResort: true });
  return {
    entry: (deviceId: number) => ({ deviceId, registrationId: generateRegistrationId(provider), authKey: auth.publicKey }),
    signedPreKey: signedKey(signed, serializePublicKey(signed.publicKey)),
    kyberLastResortKey: signedKey(lastResort, lastResort.publicKey),
  };
}

async function registration(username: string) {
  const identity = await generateIdentityKeyPair(provider);
  const { entry, signedPreKey, kyberLastResortKey } = await deviceKeys(identity);
  const signed = await signDeviceList(provider, identity, { username, version: 1, devices: [entry(1)] });
  return { identityKey: b64(identity.publicKey), deviceList: { list: b64(signed.list), signature: b64(signed.signature) }, signedPreKey, kyberLastResortKey };
}

async function login(device: TestDevice) {
  const { challenge } = (await http<{ challenge: string }>(device.baseUrl, 'POST', '/v1/auth/challenge', { body: { username: device.username, deviceId: device.deviceId } })).body;
  const signature = await signAuthChallenge(provider, device.auth.privateKey, device.username, device.deviceId, new Uint8Array(Buffer.from(challenge, 'base64')));
  return { username: device.username, deviceId: device.deviceId, challenge, signature: b64(signature) };
}

async function upload(account: TestAccount) {
  const preKeys = await generatePreKeys(provider, 100, 3);
  const kyber = [];
  for (let id = 100; id < 102; id++) kyber.push(await generateKyberPreKey(provider, account.identity, id, 0));
  const signed = await generateSignedPreKey(provider, account.identity, 2, 0);
  return {
    signedPreKey: signedKey(signed, serializePublicKey(signed.publicKey)),
    preKeys: preKeys.map((k) => ({ keyId: k.id, publicKey: b64(serializePublicKey(k.publicKey)) })),
    kyberPreKeys: kyber.map((k) => signedKey(k, k.publicKey)),
  };
}

/** The body that links a new device to `account` (whose first device asks for the token). */
async function linking(account: TestAccount) {
  const grant = await http<{ linkToken: string; deviceId: number }>(account.devices[0]!.baseUrl, 'POST', '/v1/devices/link', { token: await account.devices[0]!.login() });
  const { entry, signedPreKey, kyberLastResortKey } = await deviceKeys(account.identity);
  const deviceList = await account.sign([...account.devices.map((d) => d.entry()), entry(grant.body.deviceId)], account.version + 1);
  return { linkToken: grant.body.linkToken, deviceList, signedPreKey, kyberLastResortKey };
}

export const serverTargets: readonly FuzzTarget[] = [
  bodyTarget('rest-register', 'POST', '/v1/accounts', async () => ({ seeds: [await registration('alice'), await registration('bob'), await registration('carol')] })),
  bodyTarget('rest-challenge', 'POST', '/v1/auth/challenge', async () => ({ seeds: [{ username: 'alice', deviceId: 1 }, { username: 'Nobody_Here', deviceId: 1024 }] })),
  bodyTarget('rest-login', 'POST', '/v1/auth/token', async (server) => {
    const { devices } = await TestAccount.register(server.url, 'alice');
    return { seeds: [await login(devices[0]!), await login(devices[0]!)] };
  }),
  bodyTarget('rest-upload-keys', 'PUT', '/v1/keys', async (server) => {
    const account = await TestAccount.register(server.url, 'alice');
    return { seeds: [await upload(account)], token: tokens(account.devices[0]!) };
  }),
  bodyTarget('rest-link-device', 'POST', '/v1/devices', async (server) => ({ seeds: [await linking(await TestAccount.register(server.url, 'alice'))] })),
  bodyTarget('rest-update-devices', 'PUT', '/v1/devices', async (server) => {
    const account = await TestAccount.register(server.url, 'alice');
    const first = account.devices[0]!;
    await account.link(first);
    await account.link(first);
    return { seeds: [{ deviceList: await account.sign([first.entry(), account.devices[2]!.entry()], account.version + 1) }], token: tokens(first) };
  }),
  pathTarget('rest-lookup-account', '/v1/accounts/', ['alice', 'bob'], async (server) => {
    const alice = await TestAccount.register(server.url, 'alice');
    await TestAccount.register(server.url, 'bob');
    return tokens(alice.devices[0]!);
  }),
  pathTarget('rest-fetch-bundles', '/v1/keys/', ['bob/1', 'bob/*', 'alice/1'], async (server) => {
    const alice = await TestAccount.register(server.url, 'alice');
    await TestAccount.register(server.url, 'bob');
    return tokens(alice.devices[0]!);
  }),
];
