/**
 * The Double Ratchet as pure transitions on a {@link SessionState}
 * (Double Ratchet §3.4–3.5, libsignal `session_cipher.rs`).
 *
 * `ratchetEncrypt` and `ratchetDecrypt` return the next state beside their
 * output and never touch their input. `ratchetDecrypt` computes a candidate
 * state, authenticates the message with the keys it yields, and only then
 * returns it: on any failure it throws and the caller still holds the old
 * state, unchanged.
 *
 * Order of checks on receipt, chosen so that hostile input costs little:
 *   1. version; 2. the counter's distance (TOO_FAR_IN_FUTURE before any key is
 *   derived, against MAX_FORWARD_JUMPS and the caller's step budget); 3. a DH
 *   ratchet step if the ratchet key is new; 4. skipped or
 *   fresh message keys (DUPLICATE_MESSAGE for a consumed counter);
 *   5. the MAC; 6. AES-256-CBC.
 */
import { isCryptoError, SecretBytes, type CryptoProvider } from '@parley/crypto';

import { deriveMessageKeys, messageKeySeed, nextChainKey, wipeMessageKeys, type ChainKey } from './chainKey.js';
import { encodeSignalMessage, verifySignalMessageMac, type SignalMessage } from './codec/messages.js';
import { ProtocolError } from './errors.js';
import { MAX_FORWARD_JUMPS } from './limits.js';
import { createChain } from './rootKey.js';
import {
  findReceiverChain,
  withoutSkippedKey,
  withReceiverChain,
  withSkippedKeys,
  type ReceiverChain,
  type SessionState,
} from './sessionState.js';

/** Encrypts one message on the sending chain. */
export async function ratchetEncrypt(
  provider: CryptoProvider,
  state: SessionState,
  plaintext: Uint8Array,
): Promise<{ state: SessionState; message: SignalMessage }> {
  const seed = await messageKeySeed(provider, state.senderChain);
  const keys = await deriveMessageKeys(provider, seed);
  seed.wipe();
  try {
    const ciphertext = await provider.aes256CbcEncrypt(keys.cipherKey, keys.iv, plaintext);
    const message = await encodeSignalMessage(
      provider,
      {
        ratchetKey: state.senderRatchet.publicKey,
        counter: state.senderChain.index,
        previousCounter: state.previousCounter,
        ciphertext,
      },
      keys.macKey,
      state.localIdentityKey,
      state.remoteIdentityKey,
    );
    return { state: { ...state, senderChain: await nextChainKey(provider, state.senderChain) }, message };
  } finally {
    wipeMessageKeys(keys);
  }
}

/** A DH ratchet step for a new ratchet key of the peer's: a new receiving chain and a new sending chain. */
async function ratchetStep(
  provider: CryptoProvider,
  state: SessionState,
  theirRatchetKey: Uint8Array,
): Promise<{ state: SessionState; chain: ReceiverChain }> {
  const receiving = await createChain(provider, state.rootKey, theirRatchetKey, state.senderRatchet.privateKey);
  const senderRatchet = await provider.x25519GenerateKeyPair();
  const sending = await createChain(provider, receiving.rootKey, theirRatchetKey, senderRatchet.privateKey);
  receiving.rootKey.wipe();
  const chain: ReceiverChain = { ratchetKey: theirRatchetKey, chainKey: receiving.chainKey, skipped: new Map() };
  const next = withReceiverChain(
    {
      ...state,
      rootKey: sending.rootKey,
      senderRatchet,
      senderChain: sending.chainKey,
      previousCounter: Math.max(state.senderChain.index - 1, 0),
    },
    chain,
  );
  return { state: next, chain };
}

/**
 * The seed for `counter` on `chain`, and the chain after it. Skipped counters
 * are stored on the way (bounded by MAX_MESSAGE_KEYS).
 */
async function takeMessageKeySeed(
  provider: CryptoProvider,
  chain: ReceiverChain,
  counter: number,
): Promise<{ seed: SecretBytes; chain: ReceiverChain }> {
  const { index } = chain.chainKey;
  if (counter < index) {
    const seed = chain.skipped.get(counter);
    if (seed === undefined) {
      throw new ProtocolError('DUPLICATE_MESSAGE', `message ${counter} was already received`, { chainIndex: index, counter });
    }
    // The old state still holds `seed`: work on a copy, so a failure after this point leaves it intact.
    return { seed: SecretBytes.copyOf(seed.expose()), chain: { ...chain, skipped: withoutSkippedKey(chain.skipped, counter) } };
  }
  const skipped: [number, SecretBytes][] = [];
  let chainKey: ChainKey = chain.chainKey;
  while (chainKey.index < counter) {
    skipped.push([chainKey.index, await messageKeySeed(provider, chainKey)]);
    chainKey = await nextChainKey(provider, chainKey);
  }
  const seed = await messageKeySeed(provider, chainKey);
  return {
    seed,
    chain: { ...chain, chainKey: await nextChainKey(provider, chainKey), skipped: withSkippedKeys(chain.skipped, skipped) },
  };
}

/**
 * Chain steps a caller will pay for before any MAC is checked, shared by every
 * session state it tries one message on: a forged message cannot cost more than
 * one MAX_FORWARD_JUMPS walk however many archived states there are.
 */
export interface StepBudget {
  steps: number;
}

/** Decrypts one message; returns the state to keep if (and only if) it authenticated. */
export async function ratchetDecrypt(
  provider: CryptoProvider,
  state: SessionState,
  message: SignalMessage,
  budget: StepBudget = { steps: MAX_FORWARD_JUMPS },
): Promise<{ state: SessionState; plaintext: Uint8Array }> {
  if (message.version !== state.version) {
    throw new ProtocolError('UNSUPPORTED_VERSION', `message version ${message.version} on a version ${state.version} session`);
  }
  const existing = findReceiverChain(state, message.ratchetKey);
  const chainIndex = existing?.chainKey.index ?? 0;
  const jump = Math.max(message.counter - chainIndex, 0);
  if (jump > MAX_FORWARD_JUMPS || jump > budget.steps) {
    throw new ProtocolError('TOO_FAR_IN_FUTURE', `message ${message.counter} is more than ${Math.min(MAX_FORWARD_JUMPS, budget.steps)} ahead`, {
      chainIndex,
      counter: message.counter,
    });
  }
  budget.steps -= jump;

  const { state: candidate, chain } =
    existing === undefined ? await ratchetStep(provider, state, message.ratchetKey) : { state, chain: existing };
  const taken = await takeMessageKeySeed(provider, chain, message.counter);
  const keys = await deriveMessageKeys(provider, taken.seed);
  try {
    const authentic = await verifySignalMessageMac(provider, message, keys.macKey, state.remoteIdentityKey, state.localIdentityKey);
    if (!authentic) throw new ProtocolError('INVALID_MESSAGE', 'MAC verification failed');
    let plaintext: Uint8Array;
    try {
      plaintext = await provider.aes256CbcDecrypt(keys.cipherKey, keys.iv, message.ciphertext);
    } catch (cause) {
      if (isCryptoError(cause)) throw new ProtocolError('INVALID_MESSAGE', 'ciphertext did not decrypt', {}, { cause });
      throw cause;
    }
    return {
      state: { ...withReceiverChain(candidate, taken.chain), pendingPreKey: undefined },
      plaintext,
    };
  } finally {
    taken.seed.wipe();
    wipeMessageKeys(keys);
  }
}
