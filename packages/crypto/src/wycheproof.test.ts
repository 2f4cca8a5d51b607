/**
 * Project Wycheproof, case by case, on every provider. Each vector becomes one
 * test named by its file and tcId, so a run counts exactly what passed.
 *
 * Cases outside Parley's deliberately narrow API (AES-128/192 keys, GCM nonces
 * other than 96 bits) are asserted to be refused at the argument check.
 */
import { describe, expect, it } from 'vitest';

import { readVectorJson, vectorsAvailable, vectorSuiteTitle } from '../../../testing/vectors.js';
import { providerCases, replaying, type ProviderCase } from '../../../testing/providers.js';
import { fromHex, isCryptoError, KemType, toHex, type CryptoErrorCode } from './index.js';

interface Case {
  tcId: number;
  comment?: string;
  flags: string[];
  result: 'valid' | 'invalid' | 'acceptable';
  [field: string]: unknown;
}
interface Group {
  tests: Case[];
  [field: string]: unknown;
}
interface VectorFile {
  numberOfTests: number;
  testGroups: Group[];
}

const hex = (value: unknown): Uint8Array => fromHex(value as string);
const load = (name: string): VectorFile => readVectorJson(`wycheproof/${name}`) as VectorFile;
const cases = (file: VectorFile) =>
  file.testGroups.flatMap((group) => group.tests.map((test) => ({ group, test })));
const title = ({ test }: { test: Case }): string => `tcId ${test.tcId} ${test.result} ${test.comment ?? ''}`.trim();

/** Runs `body` once per case of `name`, after checking the file's own count. */
function suite(name: string, body: (provider: ProviderCase['make'], entries: ReturnType<typeof cases>) => void): void {
  describe.skipIf(!vectorsAvailable)(vectorSuiteTitle(`Wycheproof ${name}`), () => {
    const file = vectorsAvailable ? load(name) : { numberOfTests: 0, testGroups: [] };
    const entries = cases(file);
    it('reads every case the file declares', () => {
      expect(entries.length).toBe(file.numberOfTests);
    });
    for (const { label, make } of providerCases) {
      describe(label, () => {
        body(make, entries);
      });
    }
  });
}

async function rejects(promise: Promise<unknown>, what: 'RangeError' | CryptoErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (what === 'RangeError') expect(error).toBeInstanceOf(RangeError);
  else expect(isCryptoError(error, what), `expected CryptoError ${what}, got ${String(error)}`).toBe(true);
}

suite('x25519_test.json', (provider, entries) => {
  it.each(entries.map((e) => [title(e), e] as const))('%s', async (_, { test }) => {
    const agreement = provider().x25519Agree(hex(test['private']), hex(test['public']));
    if (test.flags.includes('ZeroSharedSecret')) {
      await rejects(agreement, 'NON_CONTRIBUTORY_DH');
    } else {
      expect(toHex((await agreement).expose())).toBe(test['shared']);
    }
  });
});

suite('ed25519_test.json', (provider, entries) => {
  it.each(entries.map((e) => [title(e), e] as const))('%s', async (_, { group, test }) => {
    const publicKey = hex((group['publicKey'] as { pk: string }).pk);
    const ok = await provider().ed25519Verify(publicKey, hex(test['msg']), hex(test['sig']));
    expect(ok).toBe(test.result === 'valid');
  });
});

suite('aes_gcm_test.json', (provider, entries) => {
  it.each(entries.map((e) => [title(e), e] as const))('%s', async (_, { group, test }) => {
    const [key, iv, aad, msg] = [hex(test['key']), hex(test['iv']), hex(test['aad']), hex(test['msg'])];
    const sealed = hex(`${test['ct'] as string}${test['tag'] as string}`);
    if (group['keySize'] !== 256 || group['ivSize'] !== 96) {
      await rejects(provider().aes256GcmDecrypt(key, iv, sealed, aad), 'RangeError');
      return;
    }
    if (test.result === 'valid') {
      expect(toHex(await provider().aes256GcmEncrypt(key, iv, msg, aad))).toBe(toHex(sealed));
      expect(toHex(await provider().aes256GcmDecrypt(key, iv, sealed, aad))).toBe(toHex(msg));
    } else {
      await rejects(provider().aes256GcmDecrypt(key, iv, sealed, aad), 'DECRYPTION_FAILED');
    }
  });
});

suite('aes_cbc_pkcs5_test.json', (provider, entries) => {
  it.each(entries.map((e) => [title(e), e] as const))('%s', async (_, { group, test }) => {
    const [key, iv, msg, ct] = [hex(test['key']), hex(test['iv']), hex(test['msg']), hex(test['ct'])];
    if (group['keySize'] !== 256) {
      await rejects(provider().aes256CbcDecrypt(key, iv, ct), 'RangeError');
      return;
    }
    if (test.result === 'valid') {
      expect(toHex(await provider().aes256CbcEncrypt(key, iv, msg))).toBe(toHex(ct));
      expect(toHex(await provider().aes256CbcDecrypt(key, iv, ct))).toBe(toHex(msg));
    } else {
      await rejects(provider().aes256CbcDecrypt(key, iv, ct), 'DECRYPTION_FAILED');
    }
  });
});

suite('hkdf_sha256_test.json', (provider, entries) => {
  it.each(entries.map((e) => [title(e), e] as const))('%s', async (_, { test }) => {
    const derive = provider().hkdfSha256(hex(test['ikm']), hex(test['salt']), hex(test['info']), Number(test['size']));
    if (test.result === 'invalid') {
      await rejects(derive, 'RangeError');
    } else {
      expect(toHex((await derive).expose())).toBe(test['okm']);
    }
  });
});

for (const [name, hash] of [
  ['hmac_sha256_test.json', 'hmacSha256'],
  ['hmac_sha512_test.json', 'hmacSha512'],
] as const) {
  suite(name, (provider, entries) => {
    it.each(entries.map((e) => [title(e), e] as const))('%s', async (_, { group, test }) => {
      const tag = await provider()[hash](hex(test['key']), hex(test['msg']));
      const truncated = toHex(tag.subarray(0, (group['tagSize'] as number) / 8));
      expect(truncated === test['tag']).toBe(test.result === 'valid');
    });
  });
}

suite('mlkem_1024_test.json', (provider, entries) => {
  it.each(entries.map((e) => [title(e), e] as const))('%s', async (_, { test }) => {
    const seeded = provider({ randomBytes: replaying(hex(test['seed'])) });
    const ciphertext = Uint8Array.of(KemType.MlKem1024, ...hex(test['c']));
    if (test.result === 'valid') {
      const { publicKey, secretKey } = await seeded.kemGenerateKeyPair(KemType.MlKem1024);
      expect(toHex(publicKey.subarray(1))).toBe(test['ek']);
      expect(toHex((await seeded.kemDecapsulate(secretKey, ciphertext)).expose())).toBe(test['K']);
    } else if (test.comment?.startsWith('Private key')) {
      await rejects(seeded.kemGenerateKeyPair(KemType.MlKem1024), 'RangeError');
    } else {
      const { secretKey } = await seeded.kemGenerateKeyPair(KemType.MlKem1024);
      await rejects(seeded.kemDecapsulate(secretKey, ciphertext), 'INVALID_KEM_INPUT');
    }
  });
});

suite('mlkem_1024_encaps_test.json', (provider, entries) => {
  it.each(entries.map((e) => [title(e), e] as const))('%s', async (_, { test }) => {
    const seeded = provider({ randomBytes: replaying(hex(test['m'])) });
    const encapsulation = seeded.kemEncapsulate(Uint8Array.of(KemType.MlKem1024, ...hex(test['ek'])));
    if (test.result === 'valid') {
      const { ciphertext, sharedSecret } = await encapsulation;
      expect(toHex(ciphertext.subarray(1))).toBe(test['c']);
      expect(toHex(sharedSecret.expose())).toBe(test['K']);
    } else {
      await rejects(encapsulation, 'INVALID_KEM_INPUT');
    }
  });
});
