/**
 * What the client keeps, and how each record is encoded in the key-value
 * store. Records holding private keys are binary (protobuf) and live only in
 * Uint8Arrays; records holding nothing secret (contacts, messages) are JSON.
 *
 *   namespace  key                                value
 *   local      device                             LocalDevice (secret: identity and auth key pairs)
 *   prekey     <id>                               libsignal PreKeyRecord (secret)
 *   signed     <id>                               libsignal SignedPreKeyRecord (secret)
 *   kyber      <id>                               last-resort flag ‖ libsignal KyberPreKeyRecord (secret)
 *   kyberUsed  <id>.<signed id>.<base key hex>    (empty): a last-resort key already used with this base key
 *   session    <username>.<device id>             session record (secret)
 *   contact    <username>                         Contact (JSON)
 *   message    <conversation>/<sent at>.<author>.<device>   StoredMessage (JSON)
 *   seen       <envelope id>                      (empty): envelopes already processed
 *   sent       <stored at>.<to>.<sent at>         Content (JSON): recent sends, for resending after a decryption error
 */
import { fromUtf8, ProtoWriter, readProto, requiredBytes, requiredUint32, requiredUint64, utf8, deserializeIdentityKeyPair, serializeIdentityKeyPair, type IdentityKeyPair } from '@parley/protocol';

import { ClientError } from '../errors.js';

/** This device: who it is, where its server is, and the counters of its keys. */
export interface LocalDevice {
  readonly username: string;
  readonly deviceId: number;
  readonly registrationId: number;
  readonly serverUrl: string;
  readonly identity: IdentityKeyPair;
  /** The key this device logs in with (it is in the signed device list). */
  readonly auth: IdentityKeyPair;
  /** The next one-time prekey id (and Kyber prekey id) to generate. */
  readonly nextPreKeyId: number;
  readonly signedPreKeyId: number;
  readonly signedPreKeyAt: number;
  /** How many last-resort Kyber keys this device has made (the newest is the one in use). */
  readonly lastResortCount: number;
}

export function encodeLocalDevice(d: LocalDevice): Uint8Array {
  const identity = serializeIdentityKeyPair(d.identity);
  const auth = serializeIdentityKeyPair(d.auth);
  const out = new ProtoWriter()
    .bytes(1, utf8(d.username))
    .uint32(2, d.deviceId)
    .uint32(3, d.registrationId)
    .bytes(4, utf8(d.serverUrl))
    .bytes(5, identity.expose())
    .bytes(6, auth.expose())
    .uint32(7, d.nextPreKeyId)
    .uint32(8, d.signedPreKeyId)
    .uint64(9, d.signedPreKeyAt)
    .uint32(10, d.lastResortCount)
    .finish();
  identity.wipe();
  auth.wipe();
  return out;
}

/** @throws ProtocolError for a record that does not decode (a damaged profile). */
export function decodeLocalDevice(bytes: Uint8Array): LocalDevice {
  const f = readProto(bytes);
  return {
    username: fromUtf8(requiredBytes(f, 1, 'username'), 'username'),
    deviceId: requiredUint32(f, 2, 'device id'),
    registrationId: requiredUint32(f, 3, 'registration id'),
    serverUrl: fromUtf8(requiredBytes(f, 4, 'server URL'), 'server URL'),
    identity: deserializeIdentityKeyPair(requiredBytes(f, 5, 'identity').slice()),
    auth: deserializeIdentityKeyPair(requiredBytes(f, 6, 'auth key').slice()),
    nextPreKeyId: requiredUint32(f, 7, 'next prekey id'),
    signedPreKeyId: requiredUint32(f, 8, 'signed prekey id'),
    signedPreKeyAt: requiredUint64(f, 9, 'signed prekey time'),
    lastResortCount: requiredUint32(f, 10, 'last-resort count'),
  };
}

/**
 * What this device knows of another account: the identity key it trusts, and
 * the newest device list it has verified under that key.
 */
export interface Contact {
  readonly username: string;
  /** Serialized identity key, base64. */
  readonly identityKey: string;
  /** Marked verified by the user (safety numbers compared). Cleared when the key changes. */
  readonly verified: boolean;
  /** The key changed while verified: sending waits until the user verifies again. */
  readonly blocked: boolean;
  /**
   * The key changed and the user has not yet verified it or dismissed the
   * news (apps show a banner while it holds). Records written before it
   * existed lack it: `loadContact` reads them as false.
   */
  readonly keyChanged: boolean;
  readonly deviceListVersion: number;
  readonly devices: readonly { readonly deviceId: number; readonly registrationId: number }[];
}

/** An outgoing message goes sending → sent → delivered → read, or sending → failed when the send gave up; an incoming one is received, then read. */
export type MessageStatus = 'sending' | 'sent' | 'delivered' | 'read' | 'failed' | 'received';

/** A message of a conversation, as shown to the user. */
export interface StoredMessage {
  /** The other account of the conversation. */
  readonly conversation: string;
  readonly direction: 'incoming' | 'outgoing';
  readonly author: string;
  readonly authorDevice: number;
  /** The author's clock: with the author, it names the message (for receipts and deduplication). */
  readonly sentAt: number;
  /** When this device stored it. */
  readonly storedAt: number;
  readonly kind: 'text' | 'notice' | 'unsupported';
  /** The text, or for a notice what happened (an identity change, say). */
  readonly body: string;
  readonly status: MessageStatus;
}

/** A text this device is about to send, as stored before the server has it. */
export function outgoingText(local: Pick<LocalDevice, 'username' | 'deviceId'>, conversation: string, body: string, sentAt: number): StoredMessage {
  return { conversation, direction: 'outgoing', author: local.username, authorDevice: local.deviceId, sentAt, storedAt: sentAt, kind: 'text', body, status: 'sending' };
}

/** Sorts by time within a conversation; the author and device make the key unique. */
export const messageKey = (m: Pick<StoredMessage, 'conversation' | 'sentAt' | 'author' | 'authorDevice'>) =>
  `${m.conversation}/${String(m.sentAt).padStart(16, '0')}.${m.author}.${m.authorDevice}`;

export const sessionKey = (username: string, deviceId: number) => `${username}.${deviceId}`;
export const seenKey = (envelopeId: number) => String(envelopeId).padStart(16, '0');

export const json = (value: unknown): Uint8Array => utf8(JSON.stringify(value));
/** A JSON record this client wrote; the caller names its type. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the type is the caller's claim about its own record
export const parse = <T>(bytes: Uint8Array): T => JSON.parse(fromUtf8(bytes, 'record')) as T;

const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const isText = (v: unknown) => typeof v === 'string';
const isOneOf = (values: readonly string[]) => (v: unknown) => typeof v === 'string' && values.includes(v);

/** What a contact from the other device must hold; its devices are fetched afresh, so only trust is read. */
const CONTACT_FIELDS: Readonly<Record<string, (v: unknown) => boolean>> = {
  username: isText,
  identityKey: isText,
  verified: (v) => typeof v === 'boolean',
  blocked: (v) => typeof v === 'boolean',
  keyChanged: (v) => v === undefined || typeof v === 'boolean',
};
const MESSAGE_FIELDS: Readonly<Record<string, (v: unknown) => boolean>> = {
  conversation: isText,
  direction: isOneOf(['incoming', 'outgoing']),
  author: isText,
  authorDevice: isCount,
  sentAt: isCount,
  storedAt: isCount,
  kind: isOneOf(['text', 'notice', 'unsupported']),
  body: isText,
  status: isOneOf(['sending', 'sent', 'delivered', 'read', 'failed', 'received']),
};

/**
 * A JSON list another device sent while linking (contacts, history), each
 * entry checked against `fields` before anything is stored.
 * @throws ClientError `BAD_RESPONSE` for bytes that are not such a list.
 */
function decodeLinkedList<T>(bytes: Uint8Array, what: string, fields: Readonly<Record<string, (v: unknown) => boolean>>): T[] {
  let value: unknown;
  try {
    value = JSON.parse(fromUtf8(bytes, what));
  } catch (error) {
    throw new ClientError('BAD_RESPONSE', `the other device sent ${what} that are not JSON`, { cause: error });
  }
  const valid = (entry: unknown) => typeof entry === 'object' && entry !== null && Object.entries(fields).every(([name, check]) => check((entry as Record<string, unknown>)[name]));
  if (!Array.isArray(value) || !value.every(valid)) throw new ClientError('BAD_RESPONSE', `the other device sent ${what} of the wrong shape`);
  return value as T[];
}

/** The contacts of a provisioning payload. @throws ClientError `BAD_RESPONSE` */
export const decodeLinkedContacts = (bytes: Uint8Array): Contact[] => decodeLinkedList(bytes, 'contacts', CONTACT_FIELDS);
/** The history of a provisioning payload. @throws ClientError `BAD_RESPONSE` */
export const decodeLinkedHistory = (bytes: Uint8Array): StoredMessage[] => decodeLinkedList(bytes, 'history', MESSAGE_FIELDS);
