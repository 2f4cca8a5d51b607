/**
 * What the protocol needs to remember, as interfaces the caller implements
 * (SQLite, IndexedDB, …), and in-memory implementations for tests.
 *
 * The protocol writes to stores only after a message has authenticated and
 * decrypted; a failed operation leaves every store as it was.
 */
import { constantTimeEqual } from '@parley/crypto';

import { addressKey, type ProtocolAddress } from './address.js';
import { ProtocolError } from './errors.js';
import type { IdentityKeyPair, KyberPreKeyRecord, PreKeyRecord, SignedPreKeyRecord } from './keys.js';
import type { SenderKeyRecord } from './senderKeys/senderKeyRecord.js';
import type { SessionRecord } from './sessionRecord.js';

/** Which way a message is going, for trust decisions. */
export type Direction = 'sending' | 'receiving';

export interface SessionStore {
  loadSession(address: ProtocolAddress): Promise<SessionRecord | undefined>;
  storeSession(address: ProtocolAddress, record: SessionRecord): Promise<void>;
}

export interface IdentityKeyStore {
  getIdentityKeyPair(): Promise<IdentityKeyPair>;
  getLocalRegistrationId(): Promise<number>;
  /**
   * Whether `identityKey` (serialized) may be used for `address`. A store must
   * answer false for a key that differs from the one it has seen for the address
   * until the user (or policy) accepts it with {@link saveIdentity}.
   */
  isTrustedIdentity(address: ProtocolAddress, identityKey: Uint8Array, direction: Direction): Promise<boolean>;
  /** Records `identityKey` as the address's key. Returns true when it replaced a different key. */
  saveIdentity(address: ProtocolAddress, identityKey: Uint8Array): Promise<boolean>;
  getIdentity(address: ProtocolAddress): Promise<Uint8Array | undefined>;
}

export interface PreKeyStore {
  loadPreKey(id: number): Promise<PreKeyRecord | undefined>;
  removePreKey(id: number): Promise<void>;
}

export interface SignedPreKeyStore {
  loadSignedPreKey(id: number): Promise<SignedPreKeyRecord | undefined>;
}

export interface KyberPreKeyStore {
  loadKyberPreKey(id: number): Promise<KyberPreKeyRecord | undefined>;
  /**
   * Called once a message built on the key decrypted: one-time keys go,
   * last-resort keys stay. The signed prekey id and Alice's base key (raw) let a
   * store notice a last-resort key reused with the same base key, a replay.
   */
  markKyberPreKeyUsed(id: number, signedPreKeyId: number, baseKey: Uint8Array): Promise<void>;
}

/**
 * Sender key records per (sender address, distribution id): the device's own
 * sender keys under its own address, and every group member's it has received.
 * Kept apart from {@link ProtocolStores}, which one-to-one sessions need alone.
 */
export interface SenderKeyStore {
  loadSenderKey(sender: ProtocolAddress, distributionId: string): Promise<SenderKeyRecord | undefined>;
  storeSenderKey(sender: ProtocolAddress, distributionId: string, record: SenderKeyRecord): Promise<void>;
}

/** Every store one device needs. */
export interface ProtocolStores {
  readonly sessions: SessionStore;
  readonly identities: IdentityKeyStore;
  readonly preKeys: PreKeyStore;
  readonly signedPreKeys: SignedPreKeyStore;
  readonly kyberPreKeys: KyberPreKeyStore;
}

/**
 * Throws UNTRUSTED_IDENTITY, carrying the new key, unless the identity store
 * trusts `identityKey` (serialized) for `address`.
 */
export async function checkTrusted(
  stores: ProtocolStores,
  address: ProtocolAddress,
  identityKey: Uint8Array,
  direction: Direction,
): Promise<void> {
  if (!(await stores.identities.isTrustedIdentity(address, identityKey, direction))) {
    throw new ProtocolError('UNTRUSTED_IDENTITY', `the identity key of ${addressKey(address)} has changed`, {
      address: addressKey(address),
      identityKey: identityKey.slice(),
    });
  }
}

/** The tail of each key's queue of operations, per set of stores. */
const queues = new WeakMap<object, Map<string, Promise<unknown>>>();

/**
 * Runs `operation` after every earlier operation on the same stores and
 * address has finished. Two decrypts of one message must not both read the
 * state from before either wrote it: that would show a duplicate twice.
 */
export async function withAddressLock<T>(stores: ProtocolStores, address: ProtocolAddress, operation: () => Promise<T>): Promise<T> {
  return withLock(stores, addressKey(address), operation);
}

/** Runs `operation` after every earlier operation on the same `owner` (a store) and `key`. */
export async function withLock<T>(owner: object, key: string, operation: () => Promise<T>): Promise<T> {
  let perAddress = queues.get(owner);
  if (perAddress === undefined) queues.set(owner, (perAddress = new Map<string, Promise<unknown>>()));
  const previous = perAddress.get(key) ?? Promise.resolve();
  const result = previous.then(operation, operation);
  const tail = result.then(
    () => undefined,
    () => undefined,
  );
  perAddress.set(key, tail);
  try {
    return await result;
  } finally {
    if (perAddress.get(key) === tail) perAddress.delete(key);
  }
}

export class InMemorySessionStore implements SessionStore {
  readonly #records = new Map<string, SessionRecord>();

  async loadSession(address: ProtocolAddress): Promise<SessionRecord | undefined> {
    return this.#records.get(addressKey(address));
  }

  async storeSession(address: ProtocolAddress, record: SessionRecord): Promise<void> {
    this.#records.set(addressKey(address), record);
  }
}

export class InMemorySenderKeyStore implements SenderKeyStore {
  readonly #records = new Map<string, SenderKeyRecord>();

  async loadSenderKey(sender: ProtocolAddress, distributionId: string): Promise<SenderKeyRecord | undefined> {
    return this.#records.get(`${addressKey(sender)}/${distributionId}`);
  }

  async storeSenderKey(sender: ProtocolAddress, distributionId: string, record: SenderKeyRecord): Promise<void> {
    this.#records.set(`${addressKey(sender)}/${distributionId}`, record);
  }
}

/** Trust on first use; a changed key is untrusted until saved. */
export class InMemoryIdentityKeyStore implements IdentityKeyStore {
  readonly #known = new Map<string, Uint8Array>();

  constructor(
    private readonly identity: IdentityKeyPair,
    private readonly registrationId: number,
  ) {}

  async getIdentityKeyPair(): Promise<IdentityKeyPair> {
    return this.identity;
  }

  async getLocalRegistrationId(): Promise<number> {
    return this.registrationId;
  }

  async isTrustedIdentity(address: ProtocolAddress, identityKey: Uint8Array): Promise<boolean> {
    const known = this.#known.get(addressKey(address));
    return known === undefined || constantTimeEqual(known, identityKey);
  }

  async saveIdentity(address: ProtocolAddress, identityKey: Uint8Array): Promise<boolean> {
    const key = addressKey(address);
    const known = this.#known.get(key);
    this.#known.set(key, identityKey.slice());
    return known !== undefined && !constantTimeEqual(known, identityKey);
  }

  async getIdentity(address: ProtocolAddress): Promise<Uint8Array | undefined> {
    return this.#known.get(addressKey(address));
  }
}

export class InMemoryPreKeyStore implements PreKeyStore, SignedPreKeyStore, KyberPreKeyStore {
  readonly #preKeys = new Map<number, PreKeyRecord>();
  readonly #signedPreKeys = new Map<number, SignedPreKeyRecord>();
  readonly #kyberPreKeys = new Map<number, KyberPreKeyRecord>();

  storePreKey(record: PreKeyRecord): void {
    this.#preKeys.set(record.id, record);
  }

  storeSignedPreKey(record: SignedPreKeyRecord): void {
    this.#signedPreKeys.set(record.id, record);
  }

  storeKyberPreKey(record: KyberPreKeyRecord): void {
    this.#kyberPreKeys.set(record.id, record);
  }

  get preKeyCount(): number {
    return this.#preKeys.size;
  }

  async loadPreKey(id: number): Promise<PreKeyRecord | undefined> {
    return this.#preKeys.get(id);
  }

  async removePreKey(id: number): Promise<void> {
    this.#preKeys.delete(id);
  }

  async loadSignedPreKey(id: number): Promise<SignedPreKeyRecord | undefined> {
    return this.#signedPreKeys.get(id);
  }

  async loadKyberPreKey(id: number): Promise<KyberPreKeyRecord | undefined> {
    return this.#kyberPreKeys.get(id);
  }

  async markKyberPreKeyUsed(id: number): Promise<void> {
    if (this.#kyberPreKeys.get(id)?.lastResort === false) this.#kyberPreKeys.delete(id);
  }
}

/** All in-memory stores for one device. */
export function inMemoryStores(identity: IdentityKeyPair, registrationId: number): ProtocolStores & { readonly preKeys: InMemoryPreKeyStore } {
  const preKeys = new InMemoryPreKeyStore();
  return {
    sessions: new InMemorySessionStore(),
    identities: new InMemoryIdentityKeyStore(identity, registrationId),
    preKeys,
    signedPreKeys: preKeys,
    kyberPreKeys: preKeys,
  };
}
