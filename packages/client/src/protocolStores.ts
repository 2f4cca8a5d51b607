/**
 * The protocol's stores (sessions, identities, prekeys) over one Transaction:
 * what a decrypt or an encrypt changes is staged there and reaches storage
 * only when the client commits it, with the message it belongs to.
 *
 * Identity policy: the first key seen for an account is trusted (and shown as
 * unverified). A different key is not trusted until the client has recorded
 * the change (with a notice in the conversation); a key that changed while
 * the contact was verified is then trusted for receiving only, so that nothing
 * is sent to it until the user verifies again.
 */
import { constantTimeEqual } from '@parley/crypto';
import {
  deserializeKyberPreKeyRecord,
  deserializePreKeyRecord,
  deserializeSessionRecord,
  deserializeSignedPreKeyRecord,
  ProtocolError,
  serializeSessionRecord,
  type Direction,
  type IdentityKeyPair,
  type KyberPreKeyRecord,
  type PreKeyRecord,
  type ProtocolAddress,
  type ProtocolStores,
  type SessionRecord,
  type SignedPreKeyRecord,
} from '@parley/protocol';

import { fromBase64, toBase64 } from './base64.js';
import { json, parse, sessionKey, type Contact } from './store/records.js';
import type { Transaction } from './store/kv.js';

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/** A stored contact; one stored before `keyChanged` existed reads as not changed. */
export async function loadContact(tx: Transaction, username: string): Promise<Contact | undefined> {
  const bytes = await tx.get('contact', username);
  if (bytes === undefined) return undefined;
  const contact = parse<Omit<Contact, 'keyChanged'> & { keyChanged?: boolean }>(bytes);
  return { ...contact, keyChanged: contact.keyChanged ?? false };
}

export function saveContact(tx: Transaction, contact: Contact): void {
  tx.put('contact', contact.username, json(contact));
}

export function protocolStores(tx: Transaction, identity: IdentityKeyPair, registrationId: number): ProtocolStores {
  return {
    sessions: {
      async loadSession(address: ProtocolAddress): Promise<SessionRecord | undefined> {
        const bytes = await tx.get('session', sessionKey(address.name, address.deviceId));
        return bytes === undefined ? undefined : deserializeSessionRecord(bytes);
      },
      async storeSession(address: ProtocolAddress, record: SessionRecord): Promise<void> {
        tx.put('session', sessionKey(address.name, address.deviceId), serializeSessionRecord(record).expose());
      },
    },
    identities: {
      getIdentityKeyPair: async () => identity,
      getLocalRegistrationId: async () => registrationId,
      async isTrustedIdentity(address: ProtocolAddress, identityKey: Uint8Array, direction: Direction): Promise<boolean> {
        const contact = await loadContact(tx, address.name);
        if (contact === undefined) return true;
        if (!constantTimeEqual(fromBase64(contact.identityKey), identityKey)) return false;
        return direction === 'receiving' || !contact.blocked;
      },
      async saveIdentity(address: ProtocolAddress, identityKey: Uint8Array): Promise<boolean> {
        const contact = await loadContact(tx, address.name);
        if (contact !== undefined) return !constantTimeEqual(fromBase64(contact.identityKey), identityKey);
        saveContact(tx, { username: address.name, identityKey: toBase64(identityKey), verified: false, blocked: false, keyChanged: false, deviceListVersion: 0, devices: [] });
        return false;
      },
      async getIdentity(address: ProtocolAddress): Promise<Uint8Array | undefined> {
        const contact = await loadContact(tx, address.name);
        return contact === undefined ? undefined : fromBase64(contact.identityKey);
      },
    },
    preKeys: {
      async loadPreKey(id: number): Promise<PreKeyRecord | undefined> {
        const bytes = await tx.get('prekey', String(id));
        return bytes === undefined ? undefined : deserializePreKeyRecord(bytes);
      },
      async removePreKey(id: number): Promise<void> {
        tx.delete('prekey', String(id));
      },
    },
    signedPreKeys: {
      async loadSignedPreKey(id: number): Promise<SignedPreKeyRecord | undefined> {
        const bytes = await tx.get('signed', String(id));
        return bytes === undefined ? undefined : deserializeSignedPreKeyRecord(bytes);
      },
    },
    kyberPreKeys: {
      async loadKyberPreKey(id: number): Promise<KyberPreKeyRecord | undefined> {
        const bytes = await tx.get('kyber', String(id));
        return bytes === undefined ? undefined : deserializeKyberPreKeyRecord(bytes.subarray(1), { lastResort: bytes[0] === 1 });
      },
      async markKyberPreKeyUsed(id: number, signedPreKeyId: number, baseKey: Uint8Array): Promise<void> {
        const bytes = await tx.get('kyber', String(id));
        if (bytes === undefined) return;
        if (bytes[0] !== 1) {
          tx.delete('kyber', String(id));
          return;
        }
        // A last-resort key stays; the same (key, signed prekey, base key) again would be a replay.
        const used = `${id}.${signedPreKeyId}.${hex(baseKey)}`;
        if ((await tx.get('kyberUsed', used)) !== undefined) {
          throw new ProtocolError('INVALID_MESSAGE', 'a last-resort Kyber prekey was used again with the same base key');
        }
        tx.put('kyberUsed', used, new Uint8Array(0));
      },
    },
  };
}
