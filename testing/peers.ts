/**
 * Two kinds of device for session tests, behind one interface: a Parley
 * device on @parley/protocol, and a libsignal-client 0.90 device (AGPL,
 * test-only peer) with in-memory stores. Either can publish a bundle, start a
 * session from the other's, and encrypt and decrypt.
 */
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

/** libsignal's stores, kept in maps. */
class LibsignalStores {
  readonly sessions = new Map<string, libsignal.SessionRecord>();
  readonly identities = new Map<string, libsignal.PublicKey>();
  readonly preKeys = new Map<number, libsignal.PreKeyRecord>();
  readonly signedPreKeys = new Map<number, libsignal.SignedPreKeyRecord>();
  readonly kyberPreKeys = new Map<number, libsignal.KyberPreKeyRecord>();

  constructor(
    readonly identity: libsignal.IdentityKeyPair,
    readonly registrationId: number,
  ) {}

  readonly sessionStore = new (class extends libsignal.SessionStore {
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

  readonly identityStore = new (class extends libsignal.IdentityKeyStore {
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
      return known !== undefined && !known.equals(key) ? libsignal.IdentityChange.ReplacedExisting : libsignal.IdentityChange.NewOrUnchanged;
    }
    async isTrustedIdentity(address: libsignal.ProtocolAddress, key: libsignal.PublicKey) {
      const known = this.outer.identities.get(address.toString());
      return known === undefined || known.equals(key);
    }
    async getIdentity(address: libsignal.ProtocolAddress) {
      return this.outer.identities.get(address.toString()) ?? null;
    }
  })(this);

  readonly preKeyStore = new (class extends libsignal.PreKeyStore {
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

  readonly signedPreKeyStore = new (class extends libsignal.SignedPreKeyStore {
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

  readonly kyberPreKeyStore = new (class extends libsignal.KyberPreKeyStore {
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

export interface LibsignalPeer extends Peer {
  readonly stores: LibsignalStores;
}

export function libsignalPeer(name: string, deviceId = 1, preKeyCount = 4): LibsignalPeer {
  const identity = libsignal.IdentityKeyPair.generate();
  const registrationId = 1 + Math.floor(Math.random() * 16_000);
  const stores = new LibsignalStores(identity, registrationId);
  for (let id = 1; id <= preKeyCount; id++) {
    const key = libsignal.PrivateKey.generate();
    stores.preKeys.set(id, libsignal.PreKeyRecord.new(id, key.getPublicKey(), key));
  }
  const signedKey = libsignal.PrivateKey.generate();
  const signedSignature = identity.privateKey.sign(signedKey.getPublicKey().serialize());
  stores.signedPreKeys.set(7, libsignal.SignedPreKeyRecord.new(7, NOW, signedKey.getPublicKey(), signedKey, signedSignature));
  const kyberPair = libsignal.KEMKeyPair.generate();
  const kyberSignature = identity.privateKey.sign(kyberPair.getPublicKey().serialize());
  stores.kyberPreKeys.set(9, libsignal.KyberPreKeyRecord.new(9, NOW, kyberPair, kyberSignature));
  let nextPreKey = 1;
  const toLib = (address: ProtocolAddress) => libsignal.ProtocolAddress.new(address.name, address.deviceId);
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
      const bundle = libsignal.PreKeyBundle.new(
        b.registrationId,
        b.deviceId,
        b.preKeyId ?? null,
        b.preKey === undefined ? null : libsignal.PublicKey.deserialize(own(b.preKey)),
        b.signedPreKeyId,
        libsignal.PublicKey.deserialize(own(b.signedPreKey)),
        own(b.signedPreKeySignature),
        libsignal.PublicKey.deserialize(own(b.identityKey)),
        b.kyberPreKeyId,
        libsignal.KEMPublicKey.deserialize(own(b.kyberPreKey)),
        own(b.kyberPreKeySignature),
      );
      await libsignal.processPreKeyBundle(bundle, toLib(peer.address), stores.sessionStore, stores.identityStore, now);
    },
    async encrypt(to, plaintext) {
      const message = await libsignal.signalEncrypt(own(plaintext), toLib(to), stores.sessionStore, stores.identityStore, now);
      return { type: message.type() as CiphertextMessage['type'], body: message.serialize() };
    },
    async decrypt(from, message) {
      if (message.type === 3) {
        return libsignal.signalDecryptPreKey(
          libsignal.PreKeySignalMessage.deserialize(own(message.body)),
          toLib(from),
          stores.sessionStore,
          stores.identityStore,
          stores.preKeyStore,
          stores.signedPreKeyStore,
          stores.kyberPreKeyStore,
        );
      }
      return libsignal.signalDecrypt(libsignal.SignalMessage.deserialize(own(message.body)), toLib(from), stores.sessionStore, stores.identityStore);
    },
  };
}
