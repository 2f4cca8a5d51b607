/**
 * Encrypting to and decrypting from one remote device, over the stores
 * (libsignal `message_encrypt` / `message_decrypt`).
 *
 * Contract: every store write happens after the message has authenticated
 * and decrypted. On any error, no store has changed — the one-time prekey a
 * corrupted first message names is still there for the genuine one.
 * Operations on one address run one at a time (per set of stores), so two
 * deliveries of one message cannot both be shown.
 */
import { constantTimeEqual, type CryptoProvider } from '@parley/crypto';

import { addressKey, type ProtocolAddress } from './address.js';
import {
  decodePreKeySignalMessage,
  decodeSignalMessage,
  encodePreKeySignalMessage,
  MessageType,
  type PreKeySignalMessage,
  type SignalMessage,
} from './codec/messages.js';
import { ratchetDecrypt, ratchetEncrypt } from './doubleRatchet.js';
import { isProtocolError, ProtocolError } from './errors.js';
import { MAX_FORWARD_JUMPS, MAX_UNACKNOWLEDGED_SESSION_AGE_MS } from './limits.js';
import { decodePublicKey } from './keys.js';
import { initializeBobSession } from './pqxdh.js';
import { EMPTY_RECORD, promoteArchived, promoteMatchingSession, promoteState, type SessionRecord } from './sessionRecord.js';
import type { SessionState } from './sessionState.js';
import { checkTrusted, withAddressLock, type ProtocolStores } from './stores.js';

/** A sealed message and the type the transport must label it with. */
export interface CiphertextMessage {
  readonly type: MessageType;
  readonly body: Uint8Array;
}


/**
 * Encrypts `plaintext` for `address`. Until the peer has answered, the result
 * is a PreKeySignalMessage that lets it build the session.
 * @param now the caller's clock, in ms since the epoch.
 */
export async function encryptMessage(
  provider: CryptoProvider,
  stores: ProtocolStores,
  address: ProtocolAddress,
  plaintext: Uint8Array,
  now: number,
): Promise<CiphertextMessage> {
  return withAddressLock(stores, address, () => encrypt(provider, stores, address, plaintext, now));
}

async function encrypt(
  provider: CryptoProvider,
  stores: ProtocolStores,
  address: ProtocolAddress,
  plaintext: Uint8Array,
  now: number,
): Promise<CiphertextMessage> {
  const record = await stores.sessions.loadSession(address);
  const state = record?.current;
  if (record === undefined || state === undefined) {
    throw new ProtocolError('NO_SESSION', `no session with ${addressKey(address)}`, { address: addressKey(address) });
  }
  const pending = state.pendingPreKey;
  if (pending !== undefined && pending.timestamp + MAX_UNACKNOWLEDGED_SESSION_AGE_MS < now) {
    throw new ProtocolError('NO_SESSION', `the session with ${addressKey(address)} was never answered and has expired`, {
      address: addressKey(address),
    });
  }
  await checkTrusted(stores, address, state.remoteIdentityKey, 'sending');

  const { state: next, message } = await ratchetEncrypt(provider, state, plaintext);
  let result: CiphertextMessage = { type: MessageType.Whisper, body: message.serialized };
  if (pending !== undefined) {
    const preKeyMessage = encodePreKeySignalMessage({
      registrationId: state.localRegistrationId,
      preKeyId: pending.preKeyId,
      signedPreKeyId: pending.signedPreKeyId,
      kyberPreKeyId: pending.kyberPreKeyId,
      kyberCiphertext: pending.kyberCiphertext,
      baseKey: pending.baseKey,
      identityKey: state.localIdentityKey,
      message,
    });
    result = { type: MessageType.PreKey, body: preKeyMessage.serialized };
  }
  await stores.identities.saveIdentity(address, state.remoteIdentityKey);
  await stores.sessions.storeSession(address, { ...record, current: next });
  return result;
}

/**
 * Tries the current session, then each archived one (as Sesame prescribes). A message
 * for an archived session promotes it back to current. For a prekey message
 * only the session it names is tried.
 */
async function decryptWithRecord(
  provider: CryptoProvider,
  record: SessionRecord,
  message: SignalMessage,
  onlyCurrent: boolean,
): Promise<{ record: SessionRecord; plaintext: Uint8Array }> {
  let firstError: ProtocolError | undefined;
  const budget = { steps: MAX_FORWARD_JUMPS };
  if (record.current !== undefined) {
    try {
      const { state, plaintext } = await ratchetDecrypt(provider, record.current, message, budget);
      return { record: { ...record, current: state }, plaintext };
    } catch (error) {
      if (isProtocolError(error, 'DUPLICATE_MESSAGE') || onlyCurrent || !isProtocolError(error)) throw error;
      firstError = error;
    }
  }
  for (const [index, previous] of record.previous.entries()) {
    try {
      const { state, plaintext } = await ratchetDecrypt(provider, previous, message, budget);
      return { record: promoteArchived(record, index, state), plaintext };
    } catch (error) {
      if (isProtocolError(error, 'DUPLICATE_MESSAGE') || !isProtocolError(error)) throw error;
      firstError ??= error;
    }
  }
  throw firstError ?? new ProtocolError('NO_SESSION', 'no session can decrypt this message');
}

/** Decrypts a Whisper (type 2) message from `address`. */
export async function decryptSignalMessage(
  provider: CryptoProvider,
  stores: ProtocolStores,
  address: ProtocolAddress,
  body: Uint8Array,
): Promise<Uint8Array> {
  const message = decodeSignalMessage(body);
  return withAddressLock(stores, address, () => decryptWhisper(provider, stores, address, message));
}

async function decryptWhisper(
  provider: CryptoProvider,
  stores: ProtocolStores,
  address: ProtocolAddress,
  message: SignalMessage,
): Promise<Uint8Array> {
  const record = await stores.sessions.loadSession(address);
  if (record === undefined || (record.current === undefined && record.previous.length === 0)) {
    throw new ProtocolError('NO_SESSION', `no session with ${addressKey(address)}`, { address: addressKey(address) });
  }
  const { record: next, plaintext } = await decryptWithRecord(provider, record, message, false);
  const remoteIdentity = (next.current as SessionState).remoteIdentityKey;
  await checkTrusted(stores, address, remoteIdentity, 'receiving');
  await stores.identities.saveIdentity(address, remoteIdentity);
  await stores.sessions.storeSession(address, next);
  return plaintext;
}

/** Builds Bob's session for a prekey message, or finds the one it already built. */
async function sessionForPreKeyMessage(
  provider: CryptoProvider,
  stores: ProtocolStores,
  record: SessionRecord,
  message: PreKeySignalMessage,
): Promise<{ record: SessionRecord; built: boolean }> {
  const existing = promoteMatchingSession(record, message.version, message.baseKey);
  if (existing !== undefined) return { record: existing, built: false };

  const signedPreKey = await stores.signedPreKeys.loadSignedPreKey(message.signedPreKeyId);
  if (signedPreKey === undefined) throw new ProtocolError('UNKNOWN_PREKEY', `no signed prekey ${message.signedPreKeyId}`);
  const kyberPreKey = await stores.kyberPreKeys.loadKyberPreKey(message.kyberPreKeyId);
  if (kyberPreKey === undefined) throw new ProtocolError('UNKNOWN_PREKEY', `no Kyber prekey ${message.kyberPreKeyId}`);
  let oneTimePreKey;
  if (message.preKeyId !== undefined) {
    oneTimePreKey = await stores.preKeys.loadPreKey(message.preKeyId);
    if (oneTimePreKey === undefined) throw new ProtocolError('UNKNOWN_PREKEY', `no one-time prekey ${message.preKeyId}`);
  }
  const ourIdentity = await stores.identities.getIdentityKeyPair();
  const state = await initializeBobSession(
    provider,
    {
      ourIdentity,
      ourSignedPreKey: signedPreKey,
      ourOneTimePreKey: oneTimePreKey,
      ourKyberSecretKey: kyberPreKey.secretKey,
      theirIdentityKey: decodePublicKey(message.identityKey, 'identity_key'),
      theirBaseKey: message.baseKey,
      kyberCiphertext: message.kyberCiphertext,
    },
    { local: ourIdentity.publicKey, remote: message.identityKey },
  );
  const full: SessionState = {
    ...state,
    localRegistrationId: await stores.identities.getLocalRegistrationId(),
    remoteRegistrationId: message.registrationId,
    pendingPreKey: undefined,
  };
  return { record: promoteState(record, full), built: true };
}

/** Decrypts a PreKey (type 3) message from `address`, building the session it starts. */
export async function decryptPreKeySignalMessage(
  provider: CryptoProvider,
  stores: ProtocolStores,
  address: ProtocolAddress,
  body: Uint8Array,
): Promise<Uint8Array> {
  const message = decodePreKeySignalMessage(body);
  return withAddressLock(stores, address, () => decryptPreKey(provider, stores, address, message));
}

async function decryptPreKey(
  provider: CryptoProvider,
  stores: ProtocolStores,
  address: ProtocolAddress,
  message: PreKeySignalMessage,
): Promise<Uint8Array> {
  await checkTrusted(stores, address, message.identityKey, 'receiving');
  const loaded = (await stores.sessions.loadSession(address)) ?? EMPTY_RECORD;
  const { record, built } = await sessionForPreKeyMessage(provider, stores, loaded, message);
  // A prekey message for a session we already have is authenticated by that session's keys, which
  // bind its identity, not the one in the message: the two must agree, or a server could swap it.
  if (!built && !constantTimeEqual((record.current as SessionState).remoteIdentityKey, message.identityKey)) {
    throw new ProtocolError('INVALID_MESSAGE', "the message's identity key differs from its session's");
  }
  const { record: next, plaintext } = await decryptWithRecord(provider, record, message.message, true);

  await stores.identities.saveIdentity(address, (next.current as SessionState).remoteIdentityKey);
  if (built) {
    await stores.kyberPreKeys.markKyberPreKeyUsed(message.kyberPreKeyId, message.signedPreKeyId, message.baseKey);
    if (message.preKeyId !== undefined) await stores.preKeys.removePreKey(message.preKeyId);
  }
  await stores.sessions.storeSession(address, next);
  return plaintext;
}

/** Decrypts either kind of message by its transport type. */
export async function decryptMessage(
  provider: CryptoProvider,
  stores: ProtocolStores,
  address: ProtocolAddress,
  message: CiphertextMessage,
): Promise<Uint8Array> {
  switch (message.type) {
    case MessageType.Whisper:
      return decryptSignalMessage(provider, stores, address, message.body);
    case MessageType.PreKey:
      return decryptPreKeySignalMessage(provider, stores, address, message.body);
    default:
      throw new ProtocolError('INVALID_ENCODING', `unknown message type ${String(message.type)}`);
  }
}
