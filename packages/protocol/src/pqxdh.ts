/**
 * PQXDH session agreement (Signal's PQXDH specification, revision 3; libsignal
 * `ratchet.rs`), in the form libsignal uses for version 4 sessions:
 *
 *   SK_input = 0xFF^32 ‖ DH(IK_A, SPK_B) ‖ DH(EK_A, IK_B) ‖ DH(EK_A, SPK_B) [‖ DH(EK_A, OPK_B)] ‖ SS_kyber
 *   RK ‖ CK ‖ PQR = HKDF-SHA256(salt = none, ikm = SK_input,
 *                               info = "WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024", 96)
 *
 * Bob's signed prekey doubles as his first ratchet key. Alice takes one DH
 * ratchet step at once, so her first messages are already on a fresh chain.
 * PQR seeds SPQR, which Parley does not speak yet; libsignal 0.90 then negotiates
 * SPQR off, and the third 32 bytes are unused.
 */
import { concatBytes, isCryptoError, type CryptoProvider, type SecretBytes } from '@parley/crypto';

import { CURRENT_VERSION } from './codec/messages.js';
import { agree } from './dh.js';
import { ProtocolError } from './errors.js';
import type { IdentityKeyPair } from './keys.js';
import { createChain, splitRootStep, type RootStep } from './rootKey.js';
import type { RatchetKeyPair, SessionState } from './sessionState.js';

const DISCONTINUITY = new Uint8Array(32).fill(0xff);
const PQXDH_INFO = new TextEncoder().encode('WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024');

/** RK ‖ CK from SK_input; the third 32 bytes (PQR) would seed SPQR and are dropped. */
async function deriveInitialKeys(provider: CryptoProvider, parts: SecretBytes[]): Promise<RootStep> {
  const input = concatBytes(DISCONTINUITY, ...parts.map((p) => p.expose()));
  for (const part of parts) part.wipe();
  const okm = await provider.hkdfSha256(input, new Uint8Array(0), PQXDH_INFO, 96);
  input.fill(0);
  return splitRootStep(okm);
}

export interface AliceParameters {
  readonly ourIdentity: IdentityKeyPair;
  readonly ourBaseKey: RatchetKeyPair;
  /** Raw public keys of Bob's. */
  readonly theirIdentityKey: Uint8Array;
  readonly theirSignedPreKey: Uint8Array;
  readonly theirOneTimePreKey: Uint8Array | undefined;
  /** Type-prefixed KEM public key. */
  readonly theirKyberPreKey: Uint8Array;
}

/** Alice's side: the new session state and the KEM ciphertext Bob needs. */
export async function initializeAliceSession(
  provider: CryptoProvider,
  p: AliceParameters,
  serializedIdentities: { local: Uint8Array; remote: Uint8Array },
): Promise<{ state: Omit<SessionState, 'localRegistrationId' | 'remoteRegistrationId' | 'pendingPreKey'>; kyberCiphertext: Uint8Array }> {
  const dh = [
    await agree(provider, p.ourIdentity.privateKey, p.theirSignedPreKey, 'signed prekey'),
    await agree(provider, p.ourBaseKey.privateKey, p.theirIdentityKey, 'identity key'),
    await agree(provider, p.ourBaseKey.privateKey, p.theirSignedPreKey, 'signed prekey'),
  ];
  if (p.theirOneTimePreKey !== undefined) {
    dh.push(await agree(provider, p.ourBaseKey.privateKey, p.theirOneTimePreKey, 'one-time prekey'));
  }
  let kem;
  try {
    kem = await provider.kemEncapsulate(p.theirKyberPreKey);
  } catch (cause) {
    if (isCryptoError(cause)) throw new ProtocolError('INVALID_KEY', 'the Kyber prekey is not a usable KEM key', {}, { cause });
    throw cause;
  }
  const { rootKey, chainKey } = await deriveInitialKeys(provider, [...dh, kem.sharedSecret]);

  const senderRatchet = await provider.x25519GenerateKeyPair();
  const sending = await createChain(provider, rootKey, p.theirSignedPreKey, senderRatchet.privateKey);
  rootKey.wipe();
  return {
    kyberCiphertext: kem.ciphertext,
    state: {
      version: CURRENT_VERSION,
      localIdentityKey: serializedIdentities.local,
      remoteIdentityKey: serializedIdentities.remote,
      aliceBaseKey: p.ourBaseKey.publicKey,
      rootKey: sending.rootKey,
      senderRatchet,
      senderChain: sending.chainKey,
      previousCounter: 0,
      receiverChains: [{ ratchetKey: p.theirSignedPreKey, chainKey, skipped: new Map() }],
    },
  };
}

export interface BobParameters {
  readonly ourIdentity: IdentityKeyPair;
  readonly ourSignedPreKey: RatchetKeyPair;
  readonly ourOneTimePreKey: RatchetKeyPair | undefined;
  /** Type-prefixed KEM secret key. */
  readonly ourKyberSecretKey: SecretBytes;
  /** Raw public keys of Alice's. */
  readonly theirIdentityKey: Uint8Array;
  readonly theirBaseKey: Uint8Array;
  readonly kyberCiphertext: Uint8Array;
}

/** True when `u` is a canonical field element encoding (below 2^255 − 19, top bit clear). */
function isCanonical(u: Uint8Array): boolean {
  if (((u[31] as number) & 0x80) !== 0) return false;
  // u ≥ p exactly when u[1..30] are all 0xff, u[31] is 0x7f and u[0] ≥ 0xed.
  if (u[31] !== 0x7f || (u[0] as number) < 0xed) return true;
  for (let i = 1; i < 31; i++) if (u[i] !== 0xff) return true;
  return false;
}

/** Bob's side, from the values in Alice's PreKeySignalMessage. */
export async function initializeBobSession(
  provider: CryptoProvider,
  p: BobParameters,
  serializedIdentities: { local: Uint8Array; remote: Uint8Array },
): Promise<Omit<SessionState, 'localRegistrationId' | 'remoteRegistrationId' | 'pendingPreKey'>> {
  if (!isCanonical(p.theirBaseKey)) throw new ProtocolError('INVALID_KEY', 'the base key is not canonically encoded');
  const dh = [
    await agree(provider, p.ourSignedPreKey.privateKey, p.theirIdentityKey, 'identity key'),
    await agree(provider, p.ourIdentity.privateKey, p.theirBaseKey, 'base key'),
    await agree(provider, p.ourSignedPreKey.privateKey, p.theirBaseKey, 'base key'),
  ];
  if (p.ourOneTimePreKey !== undefined) {
    dh.push(await agree(provider, p.ourOneTimePreKey.privateKey, p.theirBaseKey, 'base key'));
  }
  let sharedSecret;
  try {
    sharedSecret = await provider.kemDecapsulate(p.ourKyberSecretKey, p.kyberCiphertext);
  } catch (cause) {
    if (isCryptoError(cause)) throw new ProtocolError('INVALID_MESSAGE', 'the Kyber ciphertext is unusable', {}, { cause });
    throw cause;
  }
  const { rootKey, chainKey } = await deriveInitialKeys(provider, [...dh, sharedSecret]);
  return {
    version: CURRENT_VERSION,
    localIdentityKey: serializedIdentities.local,
    remoteIdentityKey: serializedIdentities.remote,
    aliceBaseKey: p.theirBaseKey,
    rootKey,
    senderRatchet: p.ourSignedPreKey,
    senderChain: chainKey,
    previousCounter: 0,
    receiverChains: [],
  };
}
