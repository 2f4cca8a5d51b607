/**
 * Group messaging with sender keys (libsignal `group_cipher.rs`): a sender
 * hands each member a SenderKeyDistributionMessage over their one-to-one
 * sessions, then encrypts each group message once, signed with its sender
 * key's signing key; members decrypt with the state the distribution built.
 *
 * Contract: a store is written only after a message's signature has
 * verified and its ciphertext has decrypted; on any error the store is
 * unchanged, so a forged or corrupted message cannot advance, rewind or
 * spend a chain. Operations on one (sender, distribution) run one at a time
 * per store, so two deliveries of one message cannot both be shown.
 */
import { isCryptoError, SecretBytes, type CryptoProvider } from '@parley/crypto';

import { addressKey, type ProtocolAddress } from './address.js';
import {
  decodeSenderKeyDistributionMessage,
  decodeSenderKeyMessage,
  encodeSenderKeyDistributionMessage,
  encodeSenderKeyMessage,
  uuidToBytes,
  verifySenderKeyMessageSignature,
  type SenderKeyDistributionMessage,
  type SenderKeyMessage,
} from './codec/senderKeyMessages.js';
import { ProtocolError } from './errors.js';
import { deriveSenderMessageKeys, wipeSenderMessageKeys } from './senderKeys/senderChainKey.js';
import {
  addSenderKeyState,
  EMPTY_SENDER_KEY_RECORD,
  replaceSenderKeyState,
  senderKeyStateForChainId,
  type SenderKeyRecord,
} from './senderKeys/senderKeyRecord.js';
import {
  advanceSenderKeyState,
  SENDER_KEY_MESSAGE_VERSION,
  senderKeyStateForIteration,
  type SenderKeyState,
} from './senderKeys/senderKeyState.js';
import { withLock, type SenderKeyStore } from './stores.js';

function lockKey(sender: ProtocolAddress, distributionId: string): string {
  return `sender-key:${addressKey(sender)}/${distributionId}`;
}

function noSenderKey(sender: ProtocolAddress, distributionId: string, why: string): ProtocolError {
  return new ProtocolError('NO_SESSION', `${why} from ${addressKey(sender)} for distribution ${distributionId}`, { address: addressKey(sender) });
}

/** A fresh sender key state of our own: random 31-bit chain id, chain key and signing key pair. */
async function newOwnState(provider: CryptoProvider): Promise<SenderKeyState> {
  const random = provider.randomBytes(4);
  // libsignal-protocol-java uses 31-bit chain ids; libsignal draws a u32 and shifts it.
  const chainId = (((random[0] as number) << 24) | ((random[1] as number) << 16) | ((random[2] as number) << 8) | (random[3] as number)) >>> 1;
  const signing = await provider.x25519GenerateKeyPair();
  return {
    messageVersion: SENDER_KEY_MESSAGE_VERSION,
    chainId,
    chainKey: { iteration: 0, key: new SecretBytes(provider.randomBytes(32)) },
    signingKey: { publicKey: signing.publicKey, privateKey: signing.privateKey },
    skippedKeys: [],
  };
}

/**
 * The distribution message for our sender key in `distributionId`, creating
 * the key (and storing it under `sender`, our own address) on first use. It
 * carries the chain key at its current iteration: send it to each member over
 * their one-to-one session, never in the clear. The message's chain key is
 * the caller's copy, to wipe once sent.
 * @throws RangeError when `distributionId` is not a lowercase hyphenated UUID.
 */
export async function createSenderKeyDistributionMessage(
  provider: CryptoProvider,
  store: SenderKeyStore,
  sender: ProtocolAddress,
  distributionId: string,
): Promise<SenderKeyDistributionMessage> {
  uuidToBytes(distributionId);
  return withLock(store, lockKey(sender, distributionId), async () => {
    let record = await store.loadSenderKey(sender, distributionId);
    let state = record?.states[0];
    if (record === undefined || state === undefined) {
      state = await newOwnState(provider);
      record = addSenderKeyState(record ?? EMPTY_SENDER_KEY_RECORD, state);
      await store.storeSenderKey(sender, distributionId, record);
    }
    return encodeSenderKeyDistributionMessage({
      distributionId,
      chainId: state.chainId,
      iteration: state.chainKey.iteration,
      // A copy: the caller may wipe the message once sent; the stored state keeps its own.
      chainKey: SecretBytes.copyOf(state.chainKey.key.expose()),
      signingKey: state.signingKey.publicKey,
    });
  });
}

/**
 * Records the sender key a member distributed (serialized
 * SenderKeyDistributionMessage). A chain already held with the same id and
 * signing key is kept as it is, so a replayed distribution cannot rewind it.
 * @throws ProtocolError `INVALID_ENCODING` for a malformed message.
 */
export async function processSenderKeyDistributionMessage(
  store: SenderKeyStore,
  sender: ProtocolAddress,
  body: Uint8Array,
): Promise<void> {
  const message = decodeSenderKeyDistributionMessage(body);
  const state: SenderKeyState = {
    messageVersion: message.version,
    chainId: message.chainId,
    chainKey: { iteration: message.iteration, key: message.chainKey },
    signingKey: { publicKey: message.signingKey, privateKey: undefined },
    skippedKeys: [],
  };
  await withLock(store, lockKey(sender, message.distributionId), async () => {
    const record = (await store.loadSenderKey(sender, message.distributionId)) ?? EMPTY_SENDER_KEY_RECORD;
    await store.storeSenderKey(sender, message.distributionId, addSenderKeyState(record, state));
  });
}

/**
 * Encrypts `plaintext` with our newest sender key for `distributionId` and
 * signs the message. `sender` is our own address, under which
 * {@link createSenderKeyDistributionMessage} stored the key.
 * @throws ProtocolError `NO_SESSION` when no sender key exists yet; `INVALID_STATE` when the newest state is not our own (no signing private key).
 */
export async function groupEncrypt(
  provider: CryptoProvider,
  store: SenderKeyStore,
  sender: ProtocolAddress,
  distributionId: string,
  plaintext: Uint8Array,
): Promise<SenderKeyMessage> {
  uuidToBytes(distributionId);
  return withLock(store, lockKey(sender, distributionId), async () => {
    const record = await store.loadSenderKey(sender, distributionId);
    const state = record?.states[0];
    if (record === undefined || state === undefined) throw noSenderKey(sender, distributionId, 'no sender key');
    const privateKey = state.signingKey.privateKey;
    if (privateKey === undefined) throw new ProtocolError('INVALID_STATE', `the sender key for ${distributionId} is not ours: it has no signing private key`);
    const { state: next, seed } = await advanceSenderKeyState(provider, state);
    const keys = await deriveSenderMessageKeys(provider, seed);
    let message: SenderKeyMessage;
    try {
      const ciphertext = await provider.aes256CbcEncrypt(keys.cipherKey, keys.iv, plaintext);
      const fields = { distributionId, chainId: state.chainId, iteration: seed.iteration, ciphertext };
      message = await encodeSenderKeyMessage(provider, fields, privateKey, state.signingKey.publicKey);
    } finally {
      wipeSenderMessageKeys(keys);
    }
    await store.storeSenderKey(sender, distributionId, replaceSenderKeyState(record, next));
    return message;
  });
}

/**
 * Decrypts a SenderKeyMessage from `sender`: finds the state for its chain
 * id, verifies its signature, derives the iteration's key on a copy of the
 * state, decrypts, and only then stores the copy.
 * @throws ProtocolError `INVALID_ENCODING` for a malformed message; `NO_SESSION` when no state from
 *   `sender` has its distribution and chain id; `INVALID_SIGNATURE` when the signature does not verify;
 *   `DUPLICATE_MESSAGE`, `TOO_FAR_IN_FUTURE` for an iteration already used or too far ahead;
 *   `INVALID_MESSAGE` when the ciphertext does not decrypt.
 */
export async function groupDecrypt(
  provider: CryptoProvider,
  store: SenderKeyStore,
  sender: ProtocolAddress,
  body: Uint8Array,
): Promise<Uint8Array> {
  const message = decodeSenderKeyMessage(body);
  const { distributionId } = message;
  return withLock(store, lockKey(sender, distributionId), async () => {
    const record: SenderKeyRecord | undefined = await store.loadSenderKey(sender, distributionId);
    const state = record === undefined ? undefined : senderKeyStateForChainId(record, message.chainId);
    if (record === undefined || state === undefined) throw noSenderKey(sender, distributionId, `no sender key chain ${message.chainId}`);
    if (state.messageVersion !== message.version) {
      throw new ProtocolError('UNSUPPORTED_VERSION', `sender key message version ${message.version} does not match its state's ${state.messageVersion}`);
    }
    if (!(await verifySenderKeyMessageSignature(provider, message, state.signingKey.publicKey))) {
      throw new ProtocolError('INVALID_SIGNATURE', `the sender key message from ${addressKey(sender)} has a bad signature`);
    }
    const { state: next, seed } = await senderKeyStateForIteration(provider, state, message.iteration);
    const keys = await deriveSenderMessageKeys(provider, seed);
    let plaintext: Uint8Array;
    try {
      plaintext = await provider.aes256CbcDecrypt(keys.cipherKey, keys.iv, message.ciphertext);
    } catch (cause) {
      if (isCryptoError(cause)) throw new ProtocolError('INVALID_MESSAGE', 'the sender key message does not decrypt', {}, { cause });
      throw cause;
    } finally {
      wipeSenderMessageKeys(keys);
    }
    await store.storeSenderKey(sender, distributionId, replaceSenderKeyState(record, next));
    return plaintext;
  });
}
