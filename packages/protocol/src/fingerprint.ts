/**
 * Safety numbers (libsignal `fingerprint.rs`): what two people compare to
 * know that no one sits between their identity keys.
 *
 *   F(id, IK) = H^iterations, with H_0 = SHA-512(0x0000 ‖ IK ‖ id ‖ IK), H_i = SHA-512(H_{i−1} ‖ IK)
 *   display   = the two 30-digit encodings of F_local and F_remote, smaller first,
 *               each being six 5-byte big-endian chunks of F, each mod 100,000, zero-padded
 *   scannable = proto CombinedFingerprints{ version=1, local=2{content=1: F_local[0..32]},
 *                                           remote=3{content=1: F_remote[0..32]} }
 *
 * Identity keys are the 33-byte serialized form; ids are the stable account identifiers.
 */
import { concatBytes, constantTimeEqual, type CryptoProvider } from '@parley/crypto';

import { ProtoWriter, readProto, requiredBytes, requiredUint32 } from './codec/protobuf.js';
import { ProtocolError } from './errors.js';
import { FINGERPRINT_ITERATIONS, FINGERPRINT_MAX_ITERATIONS } from './limits.js';

/** The scannable format version Signal uses for account-id-based safety numbers. */
export const SCANNABLE_FINGERPRINT_VERSION = 2;
const HASH_VERSION = Uint8Array.of(0, 0);

export interface Fingerprint {
  /** 60 digits, the same string on both devices. */
  readonly displayable: string;
  /** The bytes a QR code carries, from this side's point of view. */
  readonly scannable: Uint8Array;
}

export interface FingerprintParty {
  /** The stable account identifier (for Signal, the ACI's bytes). */
  readonly id: Uint8Array;
  /** The serialized (33-byte) identity key. */
  readonly identityKey: Uint8Array;
}

async function iteratedHash(provider: CryptoProvider, iterations: number, party: FingerprintParty): Promise<Uint8Array> {
  const key = party.identityKey;
  let hash = await provider.sha512(concatBytes(HASH_VERSION, key, party.id, key));
  for (let i = 1; i < iterations; i++) hash = await provider.sha512(concatBytes(hash, key));
  return hash;
}

function digits(hash: Uint8Array): string {
  let out = '';
  for (let chunk = 0; chunk < 6; chunk++) {
    let value = 0;
    for (let i = 0; i < 5; i++) value = value * 256 + (hash[chunk * 5 + i] as number);
    out += String(value % 100_000).padStart(5, '0');
  }
  return out;
}

function encodeScannable(version: number, local: Uint8Array, remote: Uint8Array): Uint8Array {
  return new ProtoWriter()
    .uint32(1, version)
    .bytes(2, new ProtoWriter().bytes(1, local).finish())
    .bytes(3, new ProtoWriter().bytes(1, remote).finish())
    .finish();
}

/** The safety number between `local` and `remote`, as libsignal's `Fingerprint::new` computes it. */
export async function createFingerprint(
  provider: CryptoProvider,
  local: FingerprintParty,
  remote: FingerprintParty,
  options: { iterations?: number; version?: number } = {},
): Promise<Fingerprint> {
  const iterations = options.iterations ?? FINGERPRINT_ITERATIONS;
  if (!Number.isInteger(iterations) || iterations <= 1 || iterations > FINGERPRINT_MAX_ITERATIONS) {
    throw new RangeError(`iterations must be an integer in 2..${FINGERPRINT_MAX_ITERATIONS}, got ${iterations}`);
  }
  const ours = await iteratedHash(provider, iterations, local);
  const theirs = await iteratedHash(provider, iterations, remote);
  const [a, b] = [digits(ours), digits(theirs)];
  return {
    displayable: a < b ? a + b : b + a,
    scannable: encodeScannable(options.version ?? SCANNABLE_FINGERPRINT_VERSION, ours.subarray(0, 32), theirs.subarray(0, 32)),
  };
}

/**
 * Whether a scanned code matches ours: same version, their local is our remote
 * and their remote our local (compared in constant time).
 * @throws ProtocolError `INVALID_ENCODING` for undecodable bytes, `UNSUPPORTED_VERSION` for another version.
 */
export function compareScannable(ours: Uint8Array, scanned: Uint8Array): boolean {
  if (!(ours instanceof Uint8Array) || !(scanned instanceof Uint8Array)) {
    throw new ProtocolError('INVALID_ENCODING', 'safety numbers to compare must be bytes');
  }
  const mine = readProto(ours);
  const theirs = readProto(scanned);
  const version = requiredUint32(theirs, 1, 'version');
  if (version !== requiredUint32(mine, 1, 'version')) {
    throw new ProtocolError('UNSUPPORTED_VERSION', `scanned safety number version ${version} differs from ours`);
  }
  const content = (fields: ReturnType<typeof readProto>, field: number, name: string): Uint8Array =>
    requiredBytes(readProto(requiredBytes(fields, field, name)), 1, `${name}.content`);
  const sameRemote = constantTimeEqual(content(theirs, 2, 'local_fingerprint'), content(mine, 3, 'remote_fingerprint'));
  const sameLocal = constantTimeEqual(content(theirs, 3, 'remote_fingerprint'), content(mine, 2, 'local_fingerprint'));
  return sameRemote && sameLocal;
}
