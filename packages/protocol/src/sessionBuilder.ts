/**
 * Starting a session from a prekey bundle (Alice's side of PQXDH; libsignal
 * `process_prekey_bundle`). Both prekey signatures are checked against the
 * bundle's identity key before any secret is computed, and a changed identity
 * key for a known address stops here with UNTRUSTED_IDENTITY.
 */
import { serializePublicKey, xeddsaVerify, type CryptoProvider } from '@parley/crypto';

import type { ProtocolAddress } from './address.js';
import { ProtocolError } from './errors.js';
import { decodePublicKey, type PreKeyBundle } from './keys.js';
import { initializeAliceSession } from './pqxdh.js';
import { EMPTY_RECORD, promoteState } from './sessionRecord.js';
import { checkTrusted, withAddressLock, type ProtocolStores } from './stores.js';

/**
 * Verifies `bundle` and makes a new session with its device the current one.
 * @param now the caller's clock (ms since the epoch), recorded to expire unanswered sessions.
 */
export async function processPreKeyBundle(
  provider: CryptoProvider,
  stores: ProtocolStores,
  address: ProtocolAddress,
  bundle: PreKeyBundle,
  now: number,
): Promise<void> {
  return withAddressLock(stores, address, () => startSession(provider, stores, address, bundle, now));
}

async function startSession(
  provider: CryptoProvider,
  stores: ProtocolStores,
  address: ProtocolAddress,
  bundle: PreKeyBundle,
  now: number,
): Promise<void> {
  const identityKey = decodePublicKey(bundle.identityKey, 'identity key');
  const serializedIdentity = serializePublicKey(identityKey);
  await checkTrusted(stores, address, serializedIdentity, 'sending');
  const signedPreKey = decodePublicKey(bundle.signedPreKey, 'signed prekey');
  if (!(await xeddsaVerify(provider, identityKey, bundle.signedPreKey, bundle.signedPreKeySignature))) {
    throw new ProtocolError('INVALID_SIGNATURE', 'the signed prekey signature does not verify');
  }
  if (!(await xeddsaVerify(provider, identityKey, bundle.kyberPreKey, bundle.kyberPreKeySignature))) {
    throw new ProtocolError('INVALID_SIGNATURE', 'the Kyber prekey signature does not verify');
  }
  if ((bundle.preKey === undefined) !== (bundle.preKeyId === undefined)) {
    throw new ProtocolError('INVALID_KEY', 'a bundle must carry both a one-time prekey and its id, or neither');
  }
  const oneTimePreKey = bundle.preKey === undefined ? undefined : decodePublicKey(bundle.preKey, 'one-time prekey');

  const ourIdentity = await stores.identities.getIdentityKeyPair();
  const ourBaseKey = await provider.x25519GenerateKeyPair();
  const { state, kyberCiphertext } = await initializeAliceSession(
    provider,
    {
      ourIdentity,
      ourBaseKey,
      theirIdentityKey: identityKey,
      theirSignedPreKey: signedPreKey,
      theirOneTimePreKey: oneTimePreKey,
      theirKyberPreKey: bundle.kyberPreKey,
    },
    { local: ourIdentity.publicKey, remote: serializedIdentity },
  );
  ourBaseKey.privateKey.wipe();
  const session = {
    ...state,
    localRegistrationId: await stores.identities.getLocalRegistrationId(),
    remoteRegistrationId: bundle.registrationId,
    pendingPreKey: {
      preKeyId: bundle.preKeyId,
      signedPreKeyId: bundle.signedPreKeyId,
      kyberPreKeyId: bundle.kyberPreKeyId,
      kyberCiphertext,
      baseKey: ourBaseKey.publicKey,
      timestamp: now,
    },
  };
  const record = (await stores.sessions.loadSession(address)) ?? EMPTY_RECORD;
  await stores.identities.saveIdentity(address, serializedIdentity);
  await stores.sessions.storeSession(address, promoteState(record, session));
}
