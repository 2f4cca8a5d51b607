/**
 * The generator's devices: one account with one device each, registered on a
 * real server through its HTTP API, logged in with a signed challenge and
 * connected on a raw WebSocket.
 *
 * Keys are made once per run and the same accounts are registered on each
 * engine's server. Only the first `keptCount` accounts keep their private
 * prekeys in protocol stores (the `protocol` workload really encrypts and
 * decrypts between them); the rest never decrypt, so they share one Kyber key
 * pair (each account still signs it with its own identity key): generating a
 * Kyber-1024 pair in JavaScript is most of a registration's client cost.
 *
 * Every device claims its own client address (`X-Forwarded-For`, read because
 * the server runs with `--trust-proxy 127.0.0.1`), as separate phones would:
 * the per-address limits on login challenges then bound nothing here.
 */
import { KemType, serializePublicKey, type CryptoProvider } from '@parley/crypto';
import {
  generateIdentityKeyPair,
  generateKyberPreKey,
  generateRegistrationId,
  generateSignedPreKey,
  inMemoryStores,
  signAuthChallenge,
  signDeviceList,
  type IdentityKeyPair,
  type PreKeyBundle,
  type ProtocolAddress,
  type ProtocolStores,
} from '@parley/protocol';
import type WebSocket from 'ws';

import { b64, fromB64, http, provider } from '../../testing/device.js';
import { inBatches as runInBatches } from '../lib/batches.js';
import { openDrained } from '../lib/socket.js';

/** HTTP steps (registrations, logins) and socket opens in flight at once. */
export const SETUP_CONCURRENCY = 32;

/** Runs `task` for first…count−1, SETUP_CONCURRENCY at a time, with a progress line every 1,000. */
export const inBatches = <T>(count: number, what: string, task: (i: number) => Promise<T>, first = 0): Promise<T[]> =>
  runInBatches(count, task, { concurrency: SETUP_CONCURRENCY, what, reportEvery: 1_000, first });
const CONNECT_TIMEOUT_MS = 60_000;

export interface Account {
  readonly username: string;
  readonly deviceId: 1;
  readonly registrationId: number;
  readonly identity: IdentityKeyPair;
  readonly auth: IdentityKeyPair;
  /** The address it claims to the server (X-Forwarded-For). */
  readonly clientAddress: string;
  /** What POST /v1/accounts takes. */
  readonly registration: unknown;
  /** Its protocol stores and bundle, for the accounts that really decrypt. */
  readonly kept?: { readonly stores: ProtocolStores; readonly bundle: PreKeyBundle; readonly address: ProtocolAddress };
}

/** The node provider, except that every Kyber key pair it makes is the same one. */
async function sharedKemProvider(): Promise<CryptoProvider> {
  const pair = await provider.kemGenerateKeyPair(KemType.Kyber1024);
  const shared: CryptoProvider = Object.create(provider) as CryptoProvider;
  return Object.assign(shared, { kemGenerateKeyPair: async () => pair });
}


/** Makes the keys of account `index` (no I/O). */
export async function makeAccount(tag: string, index: number, keep: boolean, shared: CryptoProvider): Promise<Account> {
  const username = `load_${tag}_${index}`;
  const now = Date.now();
  const identity = await generateIdentityKeyPair(provider);
  const auth = await generateIdentityKeyPair(provider);
  const registrationId = generateRegistrationId(provider);
  const signed = await generateSignedPreKey(provider, identity, 1, now);
  const lastResort = await generateKyberPreKey(keep ? provider : shared, identity, 1, now, { lastResort: true, type: KemType.Kyber1024 });
  const signedList = await signDeviceList(provider, identity, { username, version: 1, devices: [{ deviceId: 1, registrationId, authKey: auth.publicKey }] });
  const registration = {
    identityKey: b64(identity.publicKey),
    deviceList: { list: b64(signedList.list), signature: b64(signedList.signature) },
    signedPreKey: { keyId: signed.id, publicKey: b64(serializePublicKey(signed.publicKey)), signature: b64(signed.signature) },
    kyberLastResortKey: { keyId: lastResort.id, publicKey: b64(lastResort.publicKey), signature: b64(lastResort.signature) },
  };
  const clientAddress = `10.${(index >> 16) & 0xff}.${(index >> 8) & 0xff}.${index & 0xff}`;
  let kept: Account['kept'];
  if (keep) {
    const stores = inMemoryStores(identity, registrationId);
    stores.preKeys.storeSignedPreKey(signed);
    stores.preKeys.storeKyberPreKey(lastResort);
    const bundle: PreKeyBundle = {
      registrationId,
      deviceId: 1,
      signedPreKeyId: signed.id,
      signedPreKey: serializePublicKey(signed.publicKey),
      signedPreKeySignature: signed.signature,
      identityKey: identity.publicKey,
      kyberPreKeyId: lastResort.id,
      kyberPreKey: lastResort.publicKey,
      kyberPreKeySignature: lastResort.signature,
    };
    kept = { stores, bundle, address: { name: username, deviceId: 1 } };
  }
  return { username, deviceId: 1, registrationId, identity, auth, clientAddress, registration, ...(kept === undefined ? {} : { kept }) };
}

/**
 * Makes account keys as they are first needed: the first `keptCount` (with
 * stores) at once, the rest while the first server registers them, so that
 * making keys here overlaps with the server's work.
 */
export class AccountMaker {
  readonly #tag = Math.random().toString(36).slice(2, 8);
  readonly #shared = sharedKemProvider();
  readonly accounts: Account[] = [];
  readonly count: number;
  readonly keptCount: number;

  constructor(count: number, keptCount: number) {
    this.count = count;
    this.keptCount = keptCount;
  }

  /** Account `index`, made on first use. */
  async get(index: number): Promise<Account> {
    this.accounts[index] ??= await makeAccount(this.#tag, index, index < this.keptCount, await this.#shared);
    return this.accounts[index];
  }
}

const fromAddress = (account: Account) => ({ 'x-forwarded-for': account.clientAddress });

/** POST /v1/accounts. @throws unless the server answers 201. */
export async function register(baseUrl: string, account: Account): Promise<void> {
  const result = await http(baseUrl, 'POST', '/v1/accounts', { body: account.registration, headers: fromAddress(account) });
  if (result.status !== 201) throw new Error(`${account.username}: registration failed: ${result.status} ${JSON.stringify(result.body)}`);
}

/** Signs a fresh login challenge; returns the connection token's bytes (valid 10 minutes). */
export async function login(baseUrl: string, account: Account): Promise<Uint8Array> {
  const { username, deviceId } = account;
  const challenge = await http<{ challenge: string }>(baseUrl, 'POST', '/v1/auth/challenge', { body: { username, deviceId }, headers: fromAddress(account) });
  if (challenge.status !== 200) throw new Error(`${username}: challenge refused: ${challenge.status} ${JSON.stringify(challenge.body)}`);
  const signature = await signAuthChallenge(provider, account.auth.privateKey, username, deviceId, fromB64(challenge.body.challenge));
  const result = await http<{ token: string }>(baseUrl, 'POST', '/v1/auth/token', {
    body: { username, deviceId, challenge: challenge.body.challenge, signature: b64(signature) },
    headers: fromAddress(account),
  });
  if (result.status !== 200) throw new Error(`${username}: login failed: ${result.status} ${JSON.stringify(result.body)}`);
  return Buffer.from(result.body.token, 'base64url');
}

/** Opens a socket with a token from `login`, authenticates and waits for `drained` (the mailbox is empty). */
export function connect(wsUrl: string, account: Account, token: Uint8Array): Promise<WebSocket> {
  return openDrained(wsUrl, token, account.username, CONNECT_TIMEOUT_MS);
}
