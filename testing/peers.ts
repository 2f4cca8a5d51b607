/**
 * Two kinds of device for session tests, behind one interface: a Parley
 * device on @parley/protocol, and a libsignal-client device (AGPL, test-only
 * peer, 0.90 or the current release) with in-memory stores. Either can publish
 * a bundle, start a session from the other's, and encrypt and decrypt.
 */
import { createRequire } from 'node:module';

import { serializePublicKey, type CryptoProvider } from '@parley/crypto';
import {
  decryptMessage,
  encryptMessage,
  generateIdentityKeyPair,
  generateKyberPreKey,
  generatePreKeys,
  generateRegistrationId,
  generateSignedPreKey,
  inMemoryStores,
  processPreKeyBundle,
  type CiphertextMessage,
  type IdentityKeyPair,
  type PreKeyBundle,
  type ProtocolAddress,
  type ProtocolStores,
} from '@parley/protocol';
import * as libsignal from 'libsignal-client-0.90';
import * as libsignalLatest from 'libsignal-client-current';

/** A fixed clock for tests: sessions built now never expire mid-test. */
export const NOW = Date.UTC(2026, 10, 26);

export interface Peer {
  readonly address: ProtocolAddress;
  readonly identityKey: Uint8Array;
  /** A bundle with the next unused one-time prekey (or none when `withOneTimePreKey` is false). */
  bundle(options?: { withOneTimePreKey?: boolean }): Promise<PreKeyBundle>;
  startSession(with_: Peer, bundle: PreKeyBundle): Promise<void>;
  encrypt(to: ProtocolAddress, plaintext: Uint8Array): Promise<CiphertextMessage>;
  decrypt(from: ProtocolAddress, message: CiphertextMessage): Promise<Uint8Array>;
}

const own = (bytes: Uint8Array): Uint8Array<ArrayBuffer> => Uint8Array.from(bytes);

export interface ParleyPeer extends Peer {
  readonly stores: ProtocolStores & { readonly preKeys: ReturnType<typeof inMemoryStores>['preKeys'] };
  readonly identity: IdentityKeyPair;
}

export async function parleyPeer(provider: CryptoProvider, name: string, deviceId = 1, preKeyCount = 4): Promise<ParleyPeer> {
  const identity = await generateIdentityKeyPair(provider);
  const registrationId = generateRegistrationId(provider);
  const stores = inMemoryStores(identity, registrationId);
  const preKeys = await generatePreKeys(provider, 1, preKeyCount);
  for (const preKey of preKeys) stores.preKeys.storePreKey(preKey);
  const signed = await generateSignedPreKey(provider, identity, 7, NOW);
  stores.preKeys.storeSignedPreKey(signed);
  const kyber = await generateKyberPreKey(provider, identity, 9, NOW, { lastResort: true });
  stores.preKeys.storeKyberPreKey(kyber);
  let nextPreKey = 0;

  return {
    address: { name, deviceId },
    identityKey: identity.publicKey,
    identity,
    stores,
    async bundle({ withOneTimePreKey = true } = {}) {
      const preKey = withOneTimePreKey ? preKeys[nextPreKey++] : undefined;
      return {
        registrationId,
        deviceId,
        ...(preKey === undefined ? {} : { preKeyId: preKey.id, preKey: serializePublicKey(preKey.publicKey) }),
        signedPreKeyId: signed.id,
        signedPreKey: serializePublicKey(signed.publicKey),
        signedPreKeySignature: signed.signature,
        identityKey: identity.publicKey,
        kyberPreKeyId: kyber.id,
        kyberPreKey: kyber.publicKey,
        kyberPreKeySignature: kyber.signature,
      };
    },
    startSession: (peer, bundle) => processPreKeyBundle(provider, stores, peer.address, bundle, NOW),
    encrypt: (to, plaintext) => encryptMessage(provider, stores, to, plaintext, NOW),
    decrypt: (from, message) => decryptMessage(provider, stores, from, message),
  };
}

/**
 * A libsignal-client release, as the wrapper drives it. Releases after 0.90
 * take the local address after the remote one in processPreKeyBundle,
 * signalEncrypt and the two decrypts; everything else the wrapper uses is the
 * same API.
 */
export interface LibsignalRelease {
  readonly version: string;
  /** The release's classes, typed as 0.90's (see `libsignalCurrent`); calls go through the methods below. */
  readonly lib: LibsignalClasses;
  processPreKeyBundle(bundle: libsignal.PreKeyBundle, remote: libsignal.ProtocolAddress, local: libsignal.ProtocolAddress, stores: LibsignalStores, now: Date): Promise<void>;
  encrypt(plaintext: Uint8Array<ArrayBuffer>, remote: libsignal.ProtocolAddress, local: libsignal.ProtocolAddress, stores: LibsignalStores, now: Date): Promise<libsignal.CiphertextMessage>;
  decrypt(message: libsignal.SignalMessage, remote: libsignal.ProtocolAddress, local: libsignal.ProtocolAddress, stores: LibsignalStores): Promise<Uint8Array>;
  decryptPreKey(message: libsignal.PreKeySignalMessage, remote: libsignal.ProtocolAddress, local: libsignal.ProtocolAddress, stores: LibsignalStores): Promise<Uint8Array>;
}

/** What the wrapper uses of a release besides the four calls whose parameters changed after 0.90. */
export type LibsignalClasses = Omit<typeof libsignal, keyof CallsWithLocalAddress>;

/** libsignal-client 0.90.0, the release the interop tests pin. */
export const libsignal090: LibsignalRelease = {
  version: '0.90.0',
  lib: libsignal,
  processPreKeyBundle: (bundle, remote, _local, s, now) => libsignal.processPreKeyBundle(bundle, remote, s.sessionStore, s.identityStore, now),
  encrypt: (plaintext, remote, _local, s, now) => libsignal.signalEncrypt(plaintext, remote, s.sessionStore, s.identityStore, now),
  decrypt: (message, remote, _local, s) => libsignal.signalDecrypt(message, remote, s.sessionStore, s.identityStore),
  decryptPreKey: (message, remote, _local, s) =>
    libsignal.signalDecryptPreKey(message, remote, s.sessionStore, s.identityStore, s.preKeyStore, s.signedPreKeyStore, s.kyberPreKeyStore),
};

/** The four calls as releases after 0.90 declare them, over 0.90's class types. */
interface CallsWithLocalAddress {
  processPreKeyBundle(
    bundle: libsignal.PreKeyBundle,
    address: libsignal.ProtocolAddress,
    localAddress: libsignal.ProtocolAddress,
    sessionStore: libsignal.SessionStore,
    identityStore: libsignal.IdentityKeyStore,
    now?: Date,
  ): Promise<void>;
  signalEncrypt(
    message: Uint8Array<ArrayBuffer>,
    address: libsignal.ProtocolAddress,
    localAddress: libsignal.ProtocolAddress,
    sessionStore: libsignal.SessionStore,
    identityStore: libsignal.IdentityKeyStore,
    now?: Date,
  ): Promise<libsignal.CiphertextMessage>;
  signalDecrypt(
    message: libsignal.SignalMessage,
    address: libsignal.ProtocolAddress,
    localAddress: libsignal.ProtocolAddress,
    sessionStore: libsignal.SessionStore,
    identityStore: libsignal.IdentityKeyStore,
  ): Promise<Uint8Array<ArrayBuffer>>;
  signalDecryptPreKey(
    message: libsignal.PreKeySignalMessage,
    address: libsignal.ProtocolAddress,
    localAddress: libsignal.ProtocolAddress,
    sessionStore: libsignal.SessionStore,
    identityStore: libsignal.IdentityKeyStore,
    prekeyStore: libsignal.PreKeyStore,
    signedPrekeyStore: libsignal.SignedPreKeyStore,
    kyberPrekeyStore: libsignal.KyberPreKeyStore,
  ): Promise<Uint8Array<ArrayBuffer>>;
}

/**
 * The current libsignal-client release (the `libsignal-client-current`
 * devDependency). Its classes have 0.90's shapes for everything used here but
 * a different brand on their native handles, so the module is typed as 0.90's
 * once, here; objects of the two releases never meet (each peer uses one).
 */
const latest = libsignalLatest as unknown as LibsignalClasses & CallsWithLocalAddress;
export const libsignalCurrent: LibsignalRelease = {
  version: (createRequire(import.meta.url)('libsignal-client-current/package.json') as { version: string }).version,
  lib: latest,
  processPreKeyBundle: (bundle, remote, local, s, now) => latest.processPreKeyBundle(bundle, remote, local, s.sessionStore, s.identityStore, now),
  encrypt: (plaintext, remote, local, s, now) => latest.signalEncrypt(plaintext, remote, local, s.sessionStore, s.identityStore, now),
  decrypt: (message, remote, local, s) => latest.signalDecrypt(message, remote, local, s.sessionStore, s.identityStore),
  decryptPreKey: (message, remote, local, s) =>
    latest.signalDecryptPreKey(message, remote, local, s.sessionStore, s.identityStore, s.preKeyStore, s.signedPreKeyStore, s.kyberPreKeyStore),
};

/** libsignal's stores, kept in maps, built on one release's store classes. */
export class LibsignalStores {
  readonly sessions = new Map<string, libsignal.SessionRecord>();
  readonly identities = new Map<string, libsignal.PublicKey>();
  readonly preKeys = new Map<number, libsignal.PreKeyRecord>();
  readonly signedPreKeys = new Map<number, libsignal.SignedPreKeyRecord>();
  readonly kyberPreKeys = new Map<number, libsignal.KyberPreKeyRecord>();

  readonly sessionStore: libsignal.SessionStore;
  readonly identityStore: libsignal.IdentityKeyStore;
  readonly preKeyStore: libsignal.PreKeyStore;
  readonly signedPreKeyStore: libsignal.SignedPreKeyStore;
  readonly kyberPreKeyStore: libsignal.KyberPreKeyStore;

  constructor(
    lib: LibsignalClasses,
    readonly identity: libsignal.IdentityKeyPair,
    readonly registrationId: number,
  ) {
    this.sessionStore = new (class extends lib.SessionStore {
      constructor(private readonly outer: LibsignalStores) {
        super();
      }
      async saveSession(address: libsignal.ProtocolAddress, record: libsignal.SessionRecord) {
        this.outer.sessions.set(address.toString(), record);
      }
      async getSession(address: libsignal.ProtocolAddress) {
        return this.outer.sessions.get(address.toString()) ?? null;
      }
      async getExistingSessions(addresses: libsignal.ProtocolAddress[]) {
        return addresses.map((a) => {
          const record = this.outer.sessions.get(a.toString());
          if (record === undefined) throw new Error(`no session for ${a.toString()}`);
          return record;
        });
      }
    })(this);

    this.identityStore = new (class extends lib.IdentityKeyStore {
      constructor(private readonly outer: LibsignalStores) {
        super();
      }
      async getIdentityKey() {
        return this.outer.identity.privateKey;
      }
      async getLocalRegistrationId() {
        return this.outer.registrationId;
      }
      async saveIdentity(address: libsignal.ProtocolAddress, key: libsignal.PublicKey) {
        const known = this.outer.identities.get(address.toString());
        this.outer.identities.set(address.toString(), key);
        return known !== undefined && !known.equals(key) ? lib.IdentityChange.ReplacedExisting : lib.IdentityChange.NewOrUnchanged;
      }
      async isTrustedIdentity(address: libsignal.ProtocolAddress, key: libsignal.PublicKey) {
        const known = this.outer.identities.get(address.toString());
        return known === undefined || known.equals(key);
      }
      async getIdentity(address: libsignal.ProtocolAddress) {
        return this.outer.identities.get(address.toString()) ?? null;
      }
    })(this);

    this.preKeyStore = new (class extends lib.PreKeyStore {
      constructor(private readonly outer: LibsignalStores) {
        super();
      }
      async savePreKey(id: number, record: libsignal.PreKeyRecord) {
        this.outer.preKeys.set(id, record);
      }
      async getPreKey(id: number) {
        const record = this.outer.preKeys.get(id);
        if (record === undefined) throw new Error(`no prekey ${id}`);
        return record;
      }
      async removePreKey(id: number) {
        this.outer.preKeys.delete(id);
      }
    })(this);

    this.signedPreKeyStore = new (class extends lib.SignedPreKeyStore {
      constructor(private readonly outer: LibsignalStores) {
        super();
      }
      async saveSignedPreKey(id: number, record: libsignal.SignedPreKeyRecord) {
        this.outer.signedPreKeys.set(id, record);
      }
      async getSignedPreKey(id: number) {
        const record = this.outer.signedPreKeys.get(id);
        if (record === undefined) throw new Error(`no signed prekey ${id}`);
        return record;
      }
    })(this);

    this.kyberPreKeyStore = new (class extends lib.KyberPreKeyStore {
      constructor(private readonly outer: LibsignalStores) {
        super();
      }
      async saveKyberPreKey(id: number, record: libsignal.KyberPreKeyRecord) {
        this.outer.kyberPreKeys.set(id, record);
      }
      async getKyberPreKey(id: number) {
        const record = this.outer.kyberPreKeys.get(id);
        if (record === undefined) throw new Error(`no Kyber prekey ${id}`);
        return record;
      }
      async markKyberPreKeyUsed() {
        // Last-resort key: kept.
      }
    })(this);
  }
}

export interface LibsignalPeer extends Peer {
  readonly stores: LibsignalStores;
}

/** A libsignal-client device on `release` (0.90 unless told). */
export function libsignalPeer(name: string, deviceId = 1, preKeyCount = 4, release: LibsignalRelease = libsignal090): LibsignalPeer {
  const lib = release.lib;
  const identity = lib.IdentityKeyPair.generate();
  const registrationId = 1 + Math.floor(Math.random() * 16_000);
  const stores = new LibsignalStores(lib, identity, registrationId);
  for (let id = 1; id <= preKeyCount; id++) {
    const key = lib.PrivateKey.generate();
    stores.preKeys.set(id, lib.PreKeyRecord.new(id, key.getPublicKey(), key));
  }
  const signedKey = lib.PrivateKey.generate();
  const signedSignature = identity.privateKey.sign(signedKey.getPublicKey().serialize());
  stores.signedPreKeys.set(7, lib.SignedPreKeyRecord.new(7, NOW, signedKey.getPublicKey(), signedKey, signedSignature));
  const kyberPair = lib.KEMKeyPair.generate();
  const kyberSignature = identity.privateKey.sign(kyberPair.getPublicKey().serialize());
  stores.kyberPreKeys.set(9, lib.KyberPreKeyRecord.new(9, NOW, kyberPair, kyberSignature));
  let nextPreKey = 1;
  const toLib = (address: ProtocolAddress) => lib.ProtocolAddress.new(address.name, address.deviceId);
  const local = toLib({ name, deviceId });
  const now = new Date(NOW);

  return {
    address: { name, deviceId },
    identityKey: identity.publicKey.serialize(),
    stores,
    async bundle({ withOneTimePreKey = true } = {}) {
      const id = withOneTimePreKey ? nextPreKey++ : undefined;
      const preKey = id === undefined ? undefined : stores.preKeys.get(id);
      return {
        registrationId,
        deviceId,
        ...(preKey === undefined ? {} : { preKeyId: preKey.id(), preKey: preKey.publicKey().serialize() }),
        signedPreKeyId: 7,
        signedPreKey: signedKey.getPublicKey().serialize(),
        signedPreKeySignature: signedSignature,
        identityKey: identity.publicKey.serialize(),
        kyberPreKeyId: 9,
        kyberPreKey: kyberPair.getPublicKey().serialize(),
        kyberPreKeySignature: kyberSignature,
      };
    },
    async startSession(peer, b) {
      const bundle = lib.PreKeyBundle.new(
        b.registrationId,
        b.deviceId,
        b.preKeyId ?? null,
        b.preKey === undefined ? null : lib.PublicKey.deserialize(own(b.preKey)),
        b.signedPreKeyId,
        lib.PublicKey.deserialize(own(b.signedPreKey)),
        own(b.signedPreKeySignature),
        lib.PublicKey.deserialize(own(b.identityKey)),
        b.kyberPreKeyId,
        lib.KEMPublicKey.deserialize(own(b.kyberPreKey)),
        own(b.kyberPreKeySignature),
      );
      await release.processPreKeyBundle(bundle, toLib(peer.address), local, stores, now);
    },
    async encrypt(to, plaintext) {
      const message = await release.encrypt(own(plaintext), toLib(to), local, stores, now);
      return { type: message.type() as CiphertextMessage['type'], body: message.serialize() };
    },
    async decrypt(from, message) {
      if (message.type === 3) {
        return release.decryptPreKey(lib.PreKeySignalMessage.deserialize(own(message.body)), toLib(from), local, stores);
      }
      return release.decrypt(lib.SignalMessage.deserialize(own(message.body)), toLib(from), local, stores);
    },
  };
}
