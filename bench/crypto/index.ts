/**
 * bench/crypto: µs per operation for every primitive on both providers, from
 * one run, with each browser configuration's ratio to node:crypto.
 *
 *   npm run bench:crypto [-- --quick]
 *
 * Part of the suite (bench/run.ts): `--quick` spends a quarter of the time per
 * figure.
 *
 * Columns: `node` (node:crypto), `web` (WebCrypto curves, as in current
 * browsers), `web/noble` (pure-JS curves, as in browsers without WebCrypto
 * X25519/Ed25519). Kyber and ML-KEM are @noble/post-quantum on every provider.
 */
import { KemType, SecretBytes, xeddsaSign, xeddsaVerify, type CryptoProvider } from '@parley/crypto';
import { createNodeProvider } from '@parley/crypto/node';
import { createWebProvider } from '@parley/crypto/web';

import { formatMicros, measure } from '../lib/measure.js';
import { runPart, type Part } from '../lib/report.js';

const providers: readonly { label: string; provider: CryptoProvider }[] = [
  { label: 'node', provider: createNodeProvider() },
  { label: 'web', provider: createWebProvider({ curves: 'webcrypto' }) },
  { label: 'web/noble', provider: createWebProvider({ curves: 'noble' }) },
];

type Operation = (p: CryptoProvider) => Promise<() => Promise<unknown>>;

const KIB = new Uint8Array(1024).fill(7);
const KEY = SecretBytes.copyOf(new Uint8Array(32).fill(1));
const IV = new Uint8Array(16).fill(2);
const NONCE = new Uint8Array(12).fill(3);
const INFO = new TextEncoder().encode('WhisperMessageKeys');

const operations: readonly (readonly [string, Operation])[] = [
  ['SHA-256 (1 KiB)', async (p) => () => p.sha256(KIB)],
  ['SHA-512 (1 KiB)', async (p) => () => p.sha512(KIB)],
  ['HMAC-SHA256 (1 KiB)', async (p) => () => p.hmacSha256(KEY, KIB)],
  ['HMAC-SHA512 (1 KiB)', async (p) => () => p.hmacSha512(KEY, KIB)],
  ['HKDF-SHA256 (80 B out)', async (p) => () => p.hkdfSha256(KEY, new Uint8Array(0), INFO, 80)],
  ['AES-256-CBC encrypt (1 KiB)', async (p) => () => p.aes256CbcEncrypt(KEY, IV, KIB)],
  [
    'AES-256-CBC decrypt (1 KiB)',
    async (p) => {
      const ct = await p.aes256CbcEncrypt(KEY, IV, KIB);
      return () => p.aes256CbcDecrypt(KEY, IV, ct);
    },
  ],
  ['AES-256-GCM encrypt (1 KiB)', async (p) => () => p.aes256GcmEncrypt(KEY, NONCE, KIB)],
  [
    'AES-256-GCM decrypt (1 KiB)',
    async (p) => {
      const sealed = await p.aes256GcmEncrypt(KEY, NONCE, KIB);
      return () => p.aes256GcmDecrypt(KEY, NONCE, sealed);
    },
  ],
  ['X25519 key pair', async (p) => () => p.x25519GenerateKeyPair()],
  [
    'X25519 agreement',
    async (p) => {
      const [a, b] = [await p.x25519GenerateKeyPair(), await p.x25519GenerateKeyPair()];
      return () => p.x25519Agree(a.privateKey, b.publicKey);
    },
  ],
  [
    // A private key passed as plain bytes is parsed on every call: what a key loaded from storage costs once.
    'X25519 agreement, cold key',
    async (p) => {
      const [a, b] = [await p.x25519GenerateKeyPair(), await p.x25519GenerateKeyPair()];
      const raw = a.privateKey.expose();
      return () => p.x25519Agree(raw, b.publicKey);
    },
  ],
  ['Ed25519 sign', async (p) => () => p.ed25519Sign(KEY, KIB)],
  [
    'Ed25519 verify',
    async (p) => {
      const [pub, sig] = [await p.ed25519PublicKey(KEY), await p.ed25519Sign(KEY, KIB)];
      return () => p.ed25519Verify(pub, KIB, sig);
    },
  ],
  [
    'XEdDSA sign',
    async (p) => {
      const { privateKey } = await p.x25519GenerateKeyPair();
      return () => xeddsaSign(p, privateKey, KIB);
    },
  ],
  [
    'XEdDSA verify',
    async (p) => {
      const { privateKey, publicKey } = await p.x25519GenerateKeyPair();
      const signature = await xeddsaSign(p, privateKey, KIB);
      return () => xeddsaVerify(p, publicKey, KIB, signature);
    },
  ],
  ...([
    ['Kyber1024', KemType.Kyber1024],
    ['ML-KEM-1024', KemType.MlKem1024],
  ] as const).flatMap(([name, type]): (readonly [string, Operation])[] => [
    [`${name} key pair`, async (p) => () => p.kemGenerateKeyPair(type)],
    [
      `${name} encapsulate`,
      async (p) => {
        const { publicKey } = await p.kemGenerateKeyPair(type);
        return () => p.kemEncapsulate(publicKey);
      },
    ],
    [
      `${name} decapsulate`,
      async (p) => {
        const { publicKey, secretKey } = await p.kemGenerateKeyPair(type);
        const { ciphertext } = await p.kemEncapsulate(publicKey);
        return () => p.kemDecapsulate(secretKey, ciphertext);
      },
    ],
  ]),
];

const ratio = (value: number, base: number): string => `${(value / base).toFixed(2)}×`;

/** Time budget per figure, in milliseconds (measure.ts): full, and with `--quick`. */
const BUDGET_MS = { full: 400, quick: 100 } as const;

export const part: Part = async ({ quick }) => {
  const budgetMs = quick ? BUDGET_MS.quick : BUDGET_MS.full;
  console.log(`bench/crypto on Node ${process.version}: median µs per operation, ${budgetMs} ms per figure; ratios are to node:crypto from this run`);
  const rows: string[][] = [];
  const figures: Record<string, Record<string, number>> = {};
  for (const [name, operation] of operations) {
    const measured: number[] = [];
    for (const { provider } of providers) {
      measured.push((await measure(await operation(provider), { budgetMs, minBatches: quick ? 3 : 5 })).microseconds);
    }
    const [node, web, noble] = measured as [number, number, number];
    figures[name] = { node, web, webNoble: noble };
    rows.push([name, formatMicros(node), formatMicros(web), formatMicros(noble), ratio(web, node), ratio(noble, node)]);
    process.stderr.write(`  ${name}\n`);
  }
  return {
    id: 'crypto',
    title: 'Crypto primitives',
    peer: 'node:crypto (the provider the server and CLI use)',
    summary:
      'Median µs per operation on each provider. A ratio above 1× is how many times longer a browser configuration ' +
      'takes than node:crypto: `web` uses WebCrypto curves, as in current browsers; `web/noble` uses pure-JavaScript ' +
      'curves, as in browsers without WebCrypto X25519/Ed25519. Kyber and ML-KEM are @noble/post-quantum everywhere.',
    tables: [
      {
        title: 'µs per operation',
        header: ['operation', 'node', 'web', 'web/noble', 'web÷node', 'noble÷node'],
        rows,
        note: `Median batch of a ${budgetMs} ms budget per figure, every provider in the same process and run.`,
      },
    ],
    goals: [],
    plots: [],
    figures: { unit: 'µs per operation (median batch)', budgetMs, operations: figures },
  };
};

await runPart(part);
